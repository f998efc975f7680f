package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hearth-home/hearth"
	"github.com/hearth-home/hearth/webclient"
)

// browser starts Debian's Chromium (headless) for the test; like the other
// independent peers, it must be installed (.ci/run does).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := needTool(t, "chromium", "chromium")
	if !webclient.Built() {
		t.Fatal("the web chat is not built: run `make test` (it runs npm ci and the bundle step first)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 760),
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	root, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(cancelRoot)
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return root
}

// tab opens a page in a browser context of its own (own storage), as a
// second person on another device would.
func tab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return ctx
}

// do runs browser steps with a deadline, failing the test on error.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// until waits for a JavaScript condition in the page.
func until(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	do(t, ctx, what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
}

// eval evaluates an expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// msgWith is a JS expression for the .msg whose text is text.
func msgWith(text string) string {
	return `[...document.querySelectorAll('#messages .msg')].find(m => m.querySelector('.text')?.textContent === ` + jsString(text) + `)`
}

func logIn(t *testing.T, ctx context.Context, base, user string) {
	t.Helper()
	do(t, ctx, "open the page", chromedp.Navigate(base))
	do(t, ctx, "log in as "+user,
		chromedp.WaitVisible("#login-form"),
		chromedp.SendKeys("#username", user),
		chromedp.SendKeys("#password", password(user)),
		chromedp.Click(`#login-form button[type="submit"]`),
	)
	ok, _ := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('#conn-status')?.dataset.state === 'online'`, chromedp.WithPollingTimeout(15*time.Second)))
	if !ok {
		t.Logf("page: %s", eval[string](t, ctx, `document.body.innerText.slice(0, 2000) + ' | state=' + document.querySelector('#conn-status')?.dataset.state + ' | ' + JSON.stringify(sessionStorage)`))
		shot(t, ctx, "login-failed.png")
		t.Fatalf("%s did not come online", user)
	}
}

func send(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	do(t, ctx, "send "+text, chromedp.SendKeys("#text", text+"\r"))
}

// TestBrowserChat drives the web chat in Chromium as two family members
// would: login through the form, live messages both ways, receipts,
// markup shown as text, history after a reload, rooms one cannot read,
// and a message written while the server is down arriving exactly once.
func TestBrowserChat(t *testing.T) {
	browserCtx := browser(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	app := startApp(t, cfg)
	base := "http://" + app.HTTPAddr() + "/"

	dad, kid := tab(t, browserCtx), tab(t, browserCtx)
	logIn(t, dad, base, "dad")
	logIn(t, kid, base, "kid")

	t.Run("rooms", func(t *testing.T) {
		until(t, kid, "kid's rooms", `document.querySelector('#rooms button.room[data-room="family"]')`)
		until(t, dad, "dad's rooms", `document.querySelector('#rooms button.room[data-room="parents"]')`)
		if eval[bool](t, kid, `!!document.querySelector('#rooms button.room[data-room="parents"]')`) {
			t.Error("kid is shown the parents' room")
		}
	})

	t.Run("live message and receipt", func(t *testing.T) {
		send(t, kid, "hello from kid")
		until(t, dad, "dad sees kid's message", msgWith("hello from kid"))
		until(t, kid, "kid's message saved", msgWith("hello from kid")+`?.dataset.status === 'saved'`)
		if from := eval[string](t, dad, msgWith("hello from kid")+`.querySelector('.from').textContent`); !strings.Contains(from, "kid") {
			t.Errorf("sender shown as %q", from)
		}
	})

	t.Run("presence and typing", func(t *testing.T) {
		until(t, dad, "kid online", `document.querySelector('.person[data-user="kid"]')?.dataset.online === 'true'`)
		do(t, kid, "type", chromedp.SendKeys("#text", "abc"))
		until(t, dad, "kid typing", `document.querySelector('#typing').textContent.includes('kid')`)
		do(t, kid, "clear", chromedp.Evaluate[chromedp.Void](`document.querySelector('#text').value = ''`))
	})

	t.Run("markup is text", func(t *testing.T) {
		const evil = `<img src=x onerror="window.__xss=1"><b>bold</b>`
		send(t, kid, evil)
		until(t, dad, "dad sees the markup", msgWith(evil))
		for name, ctx := range map[string]context.Context{"dad": dad, "kid": kid} {
			if n := eval[int](t, ctx, `document.querySelectorAll('#messages img, #messages b, #messages script').length`); n != 0 {
				t.Errorf("%s's page made %d elements from a message", name, n)
			}
			if eval[bool](t, ctx, `window.__xss === 1`) {
				t.Errorf("%s's page ran the message's script", name)
			}
		}
		send(t, kid, "see https://example.org/a?b=1 and javascript:alert(1)")
		until(t, dad, "link", `document.querySelector('#messages a[href="https://example.org/a?b=1"]')`)
		if eval[bool](t, dad, `[...document.querySelectorAll('#messages a')].some(a => a.href.startsWith('javascript:'))`) {
			t.Error("a javascript: URL was made a link")
		}
		if rel := eval[string](t, dad, `document.querySelector('#messages a[href="https://example.org/a?b=1"]').rel`); !strings.Contains(rel, "noopener") {
			t.Errorf("link rel %q, want noopener", rel)
		}
	})

	t.Run("unread and read-only", func(t *testing.T) {
		do(t, dad, "open parents", chromedp.Click(`#rooms button.room[data-room="parents"]`))
		until(t, dad, "parents open", `document.querySelector('#rooms button.room[data-room="parents"]').getAttribute('aria-current') === 'true'`)
		send(t, kid, "unread for dad")
		until(t, dad, "family unread badge", `document.querySelector('#rooms button.room[data-room="family"] .unread')?.textContent.trim() === '1'`)
		do(t, dad, "back to family", chromedp.Click(`#rooms button.room[data-room="family"]`))
		until(t, dad, "badge cleared", `(() => { const u = document.querySelector('#rooms button.room[data-room="family"] .unread'); return !u || u.hidden || u.textContent.trim() === '' || u.textContent.trim() === '0' })()`)

		kitchen := tab(t, browserCtx)
		logIn(t, kitchen, base, "kitchen")
		until(t, kitchen, "read-only marker", `document.querySelector('#rooms button.room[data-room="family"] .readonly')`)
		until(t, kitchen, "composer disabled", `document.querySelector('#text').disabled`)
		until(t, kitchen, "kitchen sees history", msgWith("hello from kid"))
	})

	t.Run("older pages on scroll", func(t *testing.T) {
		var seed []hearth.Message
		for i := range 120 {
			seed = append(seed, hearth.Message{ID: fmt.Sprintf("old%03d", i), Room: "parents", From: "mum", Text: fmt.Sprintf("old message %d", i), At: time.Now().UnixMilli()})
		}
		if _, err := app.store.Append(seed); err != nil {
			t.Fatal(err)
		}
		do(t, dad, "open parents", chromedp.Click(`#rooms button.room[data-room="parents"]`))
		until(t, dad, "latest page", msgWith("old message 119"))
		if n := eval[int](t, dad, `document.querySelectorAll('#messages .msg').length`); n != 50 {
			t.Errorf("first page shows %d messages, want 50", n)
		}
		for _, want := range []string{"old message 69", "old message 19", "old message 0"} {
			do(t, dad, "scroll up", chromedp.Evaluate[chromedp.Void](`document.querySelector('#messages').scrollTop = 0; document.querySelector('#messages').dispatchEvent(new Event('scroll'))`))
			until(t, dad, "older page with "+want, msgWith(want))
		}
		if n := eval[int](t, dad, `document.querySelectorAll('#messages .msg').length`); n != 120 {
			t.Errorf("after scrolling to the start: %d messages, want 120", n)
		}
		do(t, dad, "back to family", chromedp.Click(`#rooms button.room[data-room="family"]`))
		until(t, dad, "family again", msgWith("hello from kid"))
	})

	t.Run("invalid token goes back to login", func(t *testing.T) {
		mum := tab(t, browserCtx)
		logIn(t, mum, base, "mum")
		// A token the server no longer accepts (as after a password change).
		do(t, mum, "spoil the token", chromedp.Evaluate[chromedp.Void](`(() => {
			for (const k of Object.keys(sessionStorage)) {
				const v = sessionStorage.getItem(k);
				if (v.includes('"token"')) { const s = JSON.parse(v); s.token = s.token.slice(0, -4) + 'AAAA'; sessionStorage.setItem(k, JSON.stringify(s)); }
			}
		})()`), chromedp.Reload())
		until(t, mum, "login form again", `document.querySelector('#login-form') && document.querySelector('#login-form').offsetParent !== null`)
		until(t, mum, "told why", `document.body.innerText.includes('session has expired')`)
	})

	// The page's own files, as Resource Timing saw them: [name,
	// transferSize, encodedBodySize, decodedBodySize].
	const files = `performance.getEntriesByType('resource').filter(e => /\/(app|style|favicon)-[A-Z2-7]{8}\./.test(e.name)).map(e => [e.name, e.transferSize, e.encodedBodySize, e.decodedBodySize])`
	t.Run("reload shows history", func(t *testing.T) {
		first := eval[[][]any](t, dad, files)
		do(t, dad, "reload", chromedp.Reload())
		until(t, dad, "history after reload", msgWith("hello from kid"))
		until(t, dad, "online after reload", `document.querySelector('#conn-status')?.dataset.state === 'online'`)
		// The first visit got the script and the style sheet compressed; the
		// reload took them from the browser's cache without asking (they
		// are immutable), so nothing of them crossed the wire.
		again := eval[[][]any](t, dad, files)
		if len(first) < 2 || len(again) < 2 {
			t.Fatalf("the page's files: first %v, after the reload %v; want the script and the style sheet in both", first, again)
		}
		for _, f := range first {
			if enc, dec := f[2].(float64), f[3].(float64); !strings.Contains(f[0].(string), ".svg") && !(enc > 0 && enc < dec/2) {
				t.Errorf("first visit: %v came %v bytes for %v, want it compressed", f[0], enc, dec)
			}
		}
		for _, f := range again {
			if f[1].(float64) != 0 {
				t.Errorf("after the reload: %v took %v bytes over the wire, want 0 (from the cache)", f[0], f[1])
			}
		}
	})

	t.Run("offline outbox", func(t *testing.T) {
		if err := app.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		until(t, kid, "kid offline", `document.querySelector('#conn-status')?.dataset.state === 'offline'`)
		send(t, kid, "written while the server was down")
		until(t, kid, "kept in the outbox", msgWith("written while the server was down")+`?.dataset.status === 'sending'`)
		if n := eval[int](t, kid, `Object.keys(localStorage).filter(k => localStorage.getItem(k).includes('written while the server was down')).length`); n != 1 {
			t.Fatalf("outbox entries in localStorage: %d, want 1", n)
		}
		cfg2 := testConfig(t, dir)
		cfg2.HTTP.Addr = app.HTTPAddr()
		app2 := startApp(t, cfg2)
		until(t, kid, "saved after the restart", msgWith("written while the server was down")+`?.dataset.status === 'saved'`)
		until(t, dad, "dad sees it", msgWith("written while the server was down"))
		time.Sleep(300 * time.Millisecond) // room for a stray second copy to show
		if n := eval[int](t, dad, `[...document.querySelectorAll('#messages .msg .text')].filter(e => e.textContent === 'written while the server was down').length`); n != 1 {
			t.Errorf("dad's page shows the message %d times", n)
		}
		var count int
		for _, m := range readHistory(t, app2, "dad", "family", "").Messages {
			if m.Text == "written while the server was down" {
				count++
			}
		}
		if count != 1 {
			t.Errorf("archived %d times, want once", count)
		}
		shot(t, dad, "chat-dad.png")
		shot(t, kid, "chat-kid.png")
	})
}

// shot saves a screenshot into $HEARTH_SCREENSHOTS (or the test's temp
// dir) and logs its path.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("HEARTH_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log(fmt.Sprintf("screenshot: %s", path))
}
