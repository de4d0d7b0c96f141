package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/careflow-health/careflow/internal/browser"
)

// viewportHeight is the first screen's height; a full-page shot grows
// past it to the page's length, up to maxHeight: a list of a hundred
// messages says no more in its last fifty rows than in its first, and a
// shot of all of them would weigh half a megabyte in the repository.
const (
	viewportHeight = 900
	maxHeight      = 1800
)

// shotTimeout bounds one page: a page that never shows its element is a
// broken page, not one to wait for.
const shotTimeout = 30 * time.Second

// shooter says where the console is and who logs in.
type shooter struct {
	base           string // http://host:port of the admin port
	user, password string
	out            string
	width          int64
	warn           io.Writer // where a skipped shot is said
}

// shotPage is one screenshot: the file, the console path, and an element the
// page shows once rendered. A path that starts with "@" is taken from the
// page before: the href of the first link matching the selector after it.
type shotPage struct {
	file string
	path string
	wait string
}

// pages are the console's pages in the order docs/console.md shows them.
// The numbers are fixed, so a link to 06-deadletter.png stays right even
// when a run has no dead letter to show.
var pages = []shotPage{
	{"02-estate.png", "/console/", "#estate-live"},
	{"03-messages.png", "/console/messages?interface=ehr&since=1h", "#search"},
	{"04-message.png", "@#messages tr[data-message] a", "#summary"},
	{"05-deadletters.png", "/console/deadletters?since=24h", "h1"},
	{"06-deadletter.png", "@#letters tr[data-letter] a", "h1"},
	{"07-exceptions.png", "/console/exceptions", "h1"},
	{"08-reviews.png", "/console/reviews", "h1"},
	{"09-charts.png", "/console/charts?window=1h", "#chart-throughput"},
	{"10-users.png", "/console/users", "#users"},
	{"11-audit.png", "/console/audit", "#audit"},
}

// errNoLink says a page had nothing to follow (no message, no dead
// letter): the shot is skipped, not the run.
var errNoLink = errors.New("nothing to follow")

// shoot logs in and writes every page's PNG, returning the files written.
func shoot(ctx context.Context, chromium string, s shooter) ([]string, error) {
	bctx, cancel := browser.New(ctx, chromium)
	defer cancel()
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(s.width, viewportHeight)); err != nil {
		return nil, fmt.Errorf("start chromium (%s): %w", chromium, err)
	}
	var written []string
	f, err := s.shot(bctx, "01-login.png", s.base+"/console/login", "#login")
	if err != nil {
		return written, err
	}
	written = append(written, f)
	if err := s.login(bctx); err != nil {
		return written, err
	}
	for _, p := range pages {
		target := s.base + p.path
		if p.path[0] == '@' {
			href, err := firstLink(bctx, p.path[1:])
			if errors.Is(err, errNoLink) {
				fmt.Fprintf(s.warn, "shots: %s skipped: the page before has no %s (run the demo longer: --settle)\n", p.file, p.path[1:])
				continue
			}
			if err != nil {
				return written, fmt.Errorf("%s: %w", p.file, err)
			}
			u, err := url.Parse(s.base)
			if err != nil {
				return written, err
			}
			ref, err := url.Parse(href)
			if err != nil {
				return written, fmt.Errorf("%s: link %q: %w", p.file, href, err)
			}
			target = u.ResolveReference(ref).String()
		}
		f, err := s.shot(bctx, p.file, target, p.wait)
		if err != nil {
			return written, err
		}
		written = append(written, f)
	}
	return written, nil
}

// login posts the login form and waits for the estate, where it lands.
func (s shooter) login(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, shotTimeout)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("user"), s.user),
		chromedp.SendKeys(chromedp.ID("password"), s.password),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("estate-live")),
	)
	if err != nil {
		return fmt.Errorf("log in to the console as %s (the estate did not show): %w", s.user, err)
	}
	return nil
}

// shot loads target, waits for the element wait and writes a PNG of the
// page (to maxHeight), shrunk.
func (s shooter) shot(ctx context.Context, file, target, wait string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, shotTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(target), chromedp.WaitVisible(chromedp.CSS(wait))); err != nil {
		return "", fmt.Errorf("%s: load %s and wait for %s: %w", file, target, wait, err)
	}
	png, err := chromedp.Run(ctx, capture(maxHeight))
	if err != nil {
		return "", fmt.Errorf("%s: screenshot of %s: %w", file, target, err)
	}
	if png, err = shrink(png); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	path := filepath.Join(s.out, file)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// firstLink is the href of the first element matching sel on the page
// shown, or errNoLink.
func firstLink(ctx context.Context, sel string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, shotTimeout)
	defer cancel()
	js := fmt.Sprintf(`(() => { const a = document.querySelector(%q); return a ? a.getAttribute("href") : ""; })()`, sel)
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		return "", fmt.Errorf("find %s: %w", sel, err)
	}
	if href == "" {
		return "", fmt.Errorf("%s: %w", sel, errNoLink)
	}
	return href, nil
}

// capture is a PNG of the whole page, as wide as it is (a table wider than
// the viewport shows whole, as a user scrolling sees it) and as long as it
// is up to height pixels.
func capture(height float64) chromedp.Action[[]byte] {
	return func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		size, err := chromedp.Evaluate[[]float64](`[document.documentElement.scrollWidth, document.documentElement.scrollHeight]`)(ctx, t)
		if err != nil || len(size) != 2 {
			return nil, fmt.Errorf("measure the page: %v", err)
		}
		r, err := cdp.Call(ctx, t, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format:                page.CaptureScreenshotFormatPng,
			CaptureBeyondViewport: ptr(true),
			FromSurface:           ptr(true),
			Clip:                  &page.Viewport{Width: size[0], Height: min(size[1], height), Scale: 1},
		})
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	}
}

func ptr[T any](v T) *T { return &v }
