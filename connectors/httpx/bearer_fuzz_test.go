// This file fuzzes how HTTP ingest reads a bearer credential: BearerToken
// and StaticTokens.Verify.

package httpx

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzBearerToken: BearerToken never panics; no header (or an empty
// first one) is ErrNoCredential; otherwise it returns the trimmed,
// non-empty rest of a first header value whose scheme is "Bearer" in any
// case, or one fixed error that never echoes the header; what it returns
// reads back the same from "Bearer <token>". StaticTokens.Verify names
// the token added for exactly that token (the later name when two are
// the same), rejects any other string and everything when empty, and a
// token sent with "Bearer" is verified through BearerToken.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc ", "", "Basic dXNlcjpwdw==", "Bearer ", "Bearerabc", "BEARER\tabc",
		"Bearer careflow-demo-token", "Bearer a b c", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", " Bearer x", "Bearer \x00\xff"} {
		f.Add(s, "Bearer second", "careflow-demo-token", "lab-secret")
	}
	wrongShape := func() string {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Authorization", "Basic x")
		_, err := BearerToken(r)
		return err.Error()
	}()
	f.Fuzz(func(t *testing.T, header, second, tokenA, tokenB string) {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		if header != "" || second != "" {
			r.Header["Authorization"] = []string{header, second}
		}
		token, err := BearerToken(r)
		switch {
		case header == "":
			if !errors.Is(err, ErrNoCredential) || token != "" {
				t.Fatalf("empty first header %q, %q: %q, %v; want ErrNoCredential", header, second, token, err)
			}
		case err != nil:
			if err.Error() != wrongShape || token != "" {
				t.Fatalf("header %q: %q, %v; want the fixed %q", header, token, err, wrongShape)
			}
			scheme, rest, ok := strings.Cut(header, " ")
			if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(rest) != "" {
				t.Fatalf("header %q refused: %v", header, err)
			}
		default:
			if token == "" || token != strings.TrimSpace(token) {
				t.Fatalf("header %q gave token %q", header, token)
			}
			scheme, rest, _ := strings.Cut(header, " ")
			if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(rest) != token {
				t.Fatalf("header %q gave token %q", header, token)
			}
			r2 := httptest.NewRequest(http.MethodPost, "/", nil)
			r2.Header.Set("Authorization", "Bearer "+token)
			if again, err := BearerToken(r2); err != nil || again != token {
				t.Fatalf("token %q read back as %q, %v", token, again, err)
			}
		}

		var none StaticTokens
		if name, ok := none.Verify(tokenA); ok || name != "" {
			t.Fatalf("no tokens, yet %q verified as %q", tokenA, name)
		}
		var s StaticTokens
		s.AddToken("a", sha256.Sum256([]byte(tokenA)))
		s.AddToken("b", sha256.Sum256([]byte(tokenB)))
		wantA := "a"
		if tokenA == tokenB {
			wantA = "b"
		}
		if name, ok := s.Verify(tokenA); !ok || name != wantA {
			t.Fatalf("Verify(%q) = %q, %v; want %q", tokenA, name, ok, wantA)
		}
		if name, ok := s.Verify(tokenB); !ok || name != "b" {
			t.Fatalf("Verify(%q) = %q, %v; want b", tokenB, name, ok)
		}
		for _, other := range []string{header, token, tokenA + "x", strings.ToUpper(tokenA)} {
			if other == tokenA || other == tokenB {
				continue
			}
			if name, ok := s.Verify(other); ok {
				t.Fatalf("Verify(%q) = %q, but only %q and %q were added", other, name, tokenA, tokenB)
			}
		}
		if tokenA != "" && tokenA == strings.TrimSpace(tokenA) {
			r3 := httptest.NewRequest(http.MethodPost, "/", nil)
			r3.Header.Set("Authorization", "bearer   "+tokenA)
			got, err := BearerToken(r3)
			if name, ok := s.Verify(got); err != nil || !ok || name != wantA {
				t.Fatalf("token %q sent as a bearer: %q, %v; verified as %q, %v", tokenA, got, err, name, ok)
			}
		}
	})
}
