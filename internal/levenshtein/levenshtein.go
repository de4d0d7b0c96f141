// Package levenshtein measures how far apart two words are, in the edits
// (insertions, deletions, substitutions) that turn one into the other: the
// distance behind every "did you mean" careflow prints, for configuration
// keys, route fields, character sets and canonical field paths. Each caller
// keeps its own idea of what is close enough to suggest.
package levenshtein

// Distance is the Levenshtein distance between a and b, counted in bytes
// (careflow's names are ASCII).
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
