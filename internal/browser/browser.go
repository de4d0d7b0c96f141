// Package browser starts headless Chromium for the console's browser
// tests and make screenshots, through chromedp.
package browser

import (
	"context"
	"errors"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// Names are the commands Chromium is found as (Debian's chromium first).
var Names = []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"}

// Path finds Chromium, or says how to install it.
func Path() (string, error) {
	for _, n := range Names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium is not installed (apt-get install -y chromium)")
}

// New starts a headless Chromium at path and returns a tab's context;
// cancel closes the browser.
func New(ctx context.Context, path string) (context.Context, context.CancelFunc) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		// CI runs as root in a container, where Chromium's sandbox
		// cannot start; the pages are careflow's own.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tctx, cancelTab := chromedp.NewContext(actx)
	return tctx, func() { cancelTab(); cancelAlloc() }
}
