package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"
)

// The page's parts as a person finds them, by their accessible names.
const (
	loginShown = `document.querySelector('#login-form')?.offsetParent !== null`
	chatOnline = `document.querySelector('#login-form')?.offsetParent === null && document.querySelector('#conn-status')?.dataset.state === 'online'`
	// stayBox is the checkbox whose label reads "Stay logged in".
	stayBox = `[...document.querySelectorAll('input[type=checkbox]')].find(c => c.closest('label')?.textContent.trim() === 'Stay logged in')`
)

// logInStaying logs user in through the form with "Stay logged in" ticked.
func logInStaying(t *testing.T, ctx context.Context, base, user string) {
	t.Helper()
	do(t, ctx, "open the page", chromedp.Navigate(base))
	until(t, ctx, "the login form", loginShown)
	until(t, ctx, `the "Stay logged in" checkbox`, stayBox)
	do(t, ctx, "log in as "+user+", staying",
		chromedp.SendKeys("#username", user),
		chromedp.SendKeys("#password", password(user)),
		chromedp.Evaluate[chromedp.Void](`(() => { const c = `+stayBox+`; if (!c.checked) c.click(); })()`),
		chromedp.Click(`#login-form button[type="submit"]`),
	)
	until(t, ctx, user+" online", chatOnline)
}

// sameDevice opens another tab in the browser context of ctx (the same
// storage, as a second tab of the same browser).
func sameDevice(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	next, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(next); err != nil {
		t.Fatalf("open a second tab: %v", err)
	}
	return next
}

// TestBrowserShellLogin: "Stay logged in" keeps a browser logged in across
// tabs and reloads, a browser without it asks again, and the settings
// list this device, whose revocation ends the login.
func TestBrowserShellLogin(t *testing.T) {
	b := browser(t)
	app := startApp(t, testConfig(t, t.TempDir()))
	base := "http://" + app.HTTPAddr() + "/"

	dad := tab(t, b)
	logInStaying(t, dad, base, "dad")

	dad2 := sameDevice(t, dad)
	do(t, dad2, "open the page in a new tab", chromedp.Navigate(base))
	until(t, dad2, "the new tab logged in", chatOnline)

	do(t, dad, "reload", chromedp.Reload())
	until(t, dad, "logged in after the reload", chatOnline)

	// Without the box ticked: the tab stays logged in over a reload, a new
	// tab of the same browser asks again.
	kid := tab(t, b)
	logIn(t, kid, base, "kid")
	kid2 := sameDevice(t, kid)
	do(t, kid2, "open the page in a new tab", chromedp.Navigate(base))
	until(t, kid2, "the login form in kid's new tab", loginShown)
	if eval[bool](t, kid2, stayBox+`.checked`) {
		t.Error(`"Stay logged in" is ticked on a fresh form`)
	}

	fresh := tab(t, b)
	do(t, fresh, "open the page in another browser", chromedp.Navigate(base))
	until(t, fresh, "the login form in another browser", loginShown)

	press(t, dad, "open the settings", `document.querySelector('header')`, "Settings")
	thisDevice := `[...document.querySelectorAll('#settings li')].find(li => li.textContent.includes('this device'))`
	until(t, dad, `the settings list "this device"`, thisDevice)
	if n := eval[int](t, dad, `document.querySelectorAll('#settings li.device').length`); n != 1 {
		t.Errorf("dad's settings list %d devices, want 1 (the login without the box is no device)", n)
	}
	do(t, dad, "revoke this device", chromedp.Evaluate[chromedp.Void](thisDevice+`.querySelector('button').click()`))
	until(t, dad, "the login form after revoking", loginShown)
	until(t, dad, "told why", `document.querySelector('#login-error').textContent.includes('logged out')`)
	// The other tab of that browser used the same device login: the server
	// refuses it now, so it is logged out too.
	until(t, dad2, "the other tab logged out", loginShown)
	do(t, dad2, "reload the other tab", chromedp.Reload())
	until(t, dad2, "still logged out after a reload", loginShown)
}

// TestBrowserShellOffline: with the server down, the page still loads
// from the service worker, says it is offline and shows the unsent message.
func TestBrowserShellOffline(t *testing.T) {
	b := browser(t)
	app := startApp(t, testConfig(t, t.TempDir()))
	base := "http://" + app.HTTPAddr() + "/"

	kid := tab(t, b)
	logIn(t, kid, base, "kid")
	until(t, kid, "the service worker controls the page", `!!navigator.serviceWorker.controller`)

	if err := app.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	until(t, kid, "offline", `document.querySelector('#conn-status')?.dataset.state === 'offline'`)
	const text = "written before the reload"
	send(t, kid, text)
	until(t, kid, "kept in the outbox", msgWith(text)+`?.dataset.status === 'sending'`)

	do(t, kid, "reload with the server down", chromedp.Reload())
	until(t, kid, "the chat shown again", `document.querySelector('#chat-view') && !document.querySelector('#chat-view').hidden && document.readyState === 'complete'`)
	until(t, kid, "offline after the reload", `document.querySelector('#conn-status')?.dataset.state === 'offline'`)
	until(t, kid, "the unsent message after the reload", msgWith(text)+`?.dataset.status === 'sending'`)
	if s := eval[string](t, kid, `document.querySelector('#conn-status').textContent`); !strings.Contains(s, "Offline") {
		t.Errorf("status reads %q, want it to say offline", s)
	}
}

// TestBrowserShellPush: a push message delivered to the service worker is
// shown as the notification "{from} in {title}" with the text.
func TestBrowserShellPush(t *testing.T) {
	b := browser(t)
	app := startApp(t, testConfig(t, t.TempDir()))
	origin := "http://" + app.HTTPAddr()

	dad := tab(t, b)
	var mu sync.Mutex
	regs := map[string]serviceworker.RegistrationID{}
	if err := chromedp.Listen(dad, func(ev any) {
		if e, ok := ev.(*serviceworker.EventWorkerRegistrationUpdated); ok {
			mu.Lock()
			for _, r := range e.Registrations {
				if !r.IsDeleted {
					regs[r.ScopeURL] = r.RegistrationID
				}
			}
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(dad, serviceworker.Enable, struct{}{}); err != nil {
		t.Fatalf("ServiceWorker.enable: %v", err)
	}
	if _, err := chromedp.CallBrowser(dad, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission:       &cdpbrowser.PermissionDescriptor{Name: "notifications"},
		Setting:          cdpbrowser.PermissionSettingGranted,
		Origin:           origin,
		BrowserContextID: chromedp.FromContext(dad).BrowserContextID,
	}); err != nil {
		t.Fatalf("grant notifications: %v", err)
	}
	logIn(t, dad, origin+"/", "dad")
	until(t, dad, "the service worker controls the page", `!!navigator.serviceWorker.controller`)
	if p := eval[string](t, dad, `Notification.permission`); p != "granted" {
		t.Fatalf("Notification.permission = %q", p)
	}
	press(t, dad, "open the settings", `document.querySelector('header')`, "Settings")
	notify := button(`document.querySelector('#settings')`, "Turn on notifications")
	until(t, dad, `"Turn on notifications" offered`, notify+`?.disabled === false`)
	// Headless Chromium has no push service, so subscribing may fail; then
	// the page says so and offers the button again, rather than hanging.
	do(t, dad, "turn on notifications", chromedp.Evaluate[chromedp.Void](notify+`.click()`))
	until(t, dad, "notifications on, or told why not", `(() => {
		const b = document.querySelector('#notify-toggle'), s = document.querySelector('#notify-status').textContent;
		return !b.disabled && (b.textContent === 'Turn off notifications' || s.includes('Could not turn on notifications'));
	})()`)
	do(t, dad, "close the settings", chromedp.Evaluate[chromedp.Void](`document.querySelector('#settings').close()`))

	var id serviceworker.RegistrationID
	waitFor(t, "the service worker's registration", 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		id = regs[origin+"/"]
		return id != ""
	})
	payload, _ := json.Marshal(map[string]any{"room": "family", "title": "Family", "from": "kid", "id": "m1", "seq": 7, "text": "dinner is ready"})
	if _, err := chromedp.Call(dad, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{Origin: origin, RegistrationID: id, Data: string(payload)}); err != nil {
		t.Fatalf("deliver the push message: %v", err)
	}
	var got []string
	waitFor(t, "the notification", 15*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(dad, 5*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.map(n => n.title + ' | ' + n.body + ' | ' + n.tag))`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Logf("getNotifications: %v", err)
			return false
		}
		got = v
		return len(v) > 0
	})
	if len(got) != 1 || got[0] != "kid in Family | dinner is ready | family:m1" {
		t.Errorf("notifications %q, want [\"kid in Family | dinner is ready | family:m1\"]", got)
	}
}

// TestBrowserShellGerman: a browser that prefers German gets the login
// form in German.
func TestBrowserShellGerman(t *testing.T) {
	b := browser(t)
	app := startApp(t, testConfig(t, t.TempDir()))
	base := "http://" + app.HTTPAddr() + "/"

	de := tab(t, b)
	ua := eval[string](t, de, `navigator.userAgent`)
	if _, err := chromedp.Call(de, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: "de-DE,de"}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(de, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: "de_DE"}); err != nil {
		t.Fatal(err)
	}
	do(t, de, "open the page", chromedp.Navigate(base))
	until(t, de, "the login form", loginShown)
	until(t, de, "the login button in German", `document.querySelector('#login-form button[type=submit]').textContent.trim() === 'Anmelden'`)
	for sel, want := range map[string]string{
		`label[for=username]`: "Name",
		`label[for=password]`: "Passwort",
		`label.remember`:      "Angemeldet bleiben",
	} {
		if got := eval[string](t, de, `document.querySelector('`+sel+`').textContent.trim()`); got != want {
			t.Errorf("%s reads %q, want %q", sel, got, want)
		}
	}
	if l := eval[string](t, de, `document.documentElement.lang`); l != "de" {
		t.Errorf("<html lang=%q>, want de", l)
	}
}

// TestBrowserShellTheme: choosing dark in the settings darkens the page,
// and the choice survives a reload.
func TestBrowserShellTheme(t *testing.T) {
	b := browser(t)
	app := startApp(t, testConfig(t, t.TempDir()))
	base := "http://" + app.HTTPAddr() + "/"

	mum := tab(t, b)
	logIn(t, mum, base, "mum")
	if th := eval[string](t, mum, `document.documentElement.dataset.theme`); th != "light" {
		t.Errorf("data-theme %q before choosing, want light (headless prefers light)", th)
	}
	press(t, mum, "open the settings", `document.querySelector('header')`, "Settings")
	dark := `[...document.querySelectorAll('#settings input[type=radio]')].find(r => r.closest('label')?.textContent.trim() === 'Dark')`
	until(t, mum, "the Dark choice", dark)
	do(t, mum, "choose dark", chromedp.Evaluate[chromedp.Void](dark+`.click()`))
	until(t, mum, "the page dark", `document.documentElement.dataset.theme === 'dark'`)
	do(t, mum, "reload", chromedp.Reload())
	until(t, mum, "online after the reload", chatOnline)
	if th := eval[string](t, mum, `document.documentElement.dataset.theme`); th != "dark" {
		t.Errorf("data-theme %q after the reload, want dark", th)
	}
}

// TestBrowserShellMute: "Mute room" is pressed once the room is muted, the
// server keeps it, and a reload shows it pressed still.
func TestBrowserShellMute(t *testing.T) {
	b := browser(t)
	app := startApp(t, testConfig(t, t.TempDir()))
	base := "http://" + app.HTTPAddr() + "/"

	kid := tab(t, b)
	logIn(t, kid, base, "kid")
	header := `document.querySelector('header')`
	muteBtn := button(header, "Mute room")
	until(t, kid, `"Mute room" shown, not pressed`, muteBtn+`?.offsetParent !== null && `+muteBtn+`.getAttribute('aria-pressed') === 'false'`)
	press(t, kid, "mute the room", header, "Mute room")
	until(t, kid, `"Mute room" pressed`, muteBtn+`.getAttribute('aria-pressed') === 'true'`)
	muted := func() map[string]bool {
		var rooms []struct {
			Name  string `json:"name"`
			Muted bool   `json:"muted"`
		}
		httpDo(t, "GET", base+"api/rooms", login(t, app, "kid"), "", &rooms)
		m := map[string]bool{}
		for _, r := range rooms {
			m[r.Name] = r.Muted
		}
		return m
	}
	if m := muted(); !m["family"] {
		t.Errorf("the server's rooms for kid: %v, want family muted", m)
	}
	do(t, kid, "reload", chromedp.Reload())
	until(t, kid, "online after the reload", chatOnline)
	until(t, kid, `"Mute room" still pressed`, muteBtn+`?.getAttribute('aria-pressed') === 'true'`)
	press(t, kid, "unmute the room", header, "Mute room")
	until(t, kid, `"Mute room" not pressed`, muteBtn+`.getAttribute('aria-pressed') === 'false'`)
	if m := muted(); m["family"] {
		t.Errorf("the server's rooms for kid: %v, want family not muted", m)
	}
}

// TestBrowserShellLanguage: choosing Deutsch in the settings of an English
// browser reloads the page in German, and it stays German.
func TestBrowserShellLanguage(t *testing.T) {
	b := browser(t)
	app := startApp(t, testConfig(t, t.TempDir()))
	base := "http://" + app.HTTPAddr() + "/"

	mum := tab(t, b)
	logIn(t, mum, base, "mum")
	press(t, mum, "open the settings", `document.querySelector('header')`, "Settings")
	until(t, mum, "the language choice", `document.querySelector('label[for=language]')?.textContent === 'Language' && [...document.querySelector('#language').options].some(o => o.textContent === 'Deutsch')`)
	do(t, mum, "choose Deutsch", chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.querySelector('#language');
		s.value = [...s.options].find(o => o.textContent === 'Deutsch').value;
		s.dispatchEvent(new Event('change', { bubbles: true }));
	})()`))
	// The page reloads itself: evaluations fail while it does.
	german := `document.documentElement.lang === 'de' && !!(` + button(`document.querySelector('header')`, "Einstellungen") + `)`
	waitFor(t, "the page in German", 15*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(mum, 2*time.Second)
		defer cancel()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](german))
		return err == nil && ok
	})
	until(t, mum, "online in German", chatOnline)
	do(t, mum, "reload", chromedp.Reload())
	until(t, mum, "still German after a reload", `document.documentElement.lang === 'de' && !!(`+button(`document.querySelector('header')`, "Abmelden")+`)`)
}

// TestBrowserShellDeepLink: /#room=NAME (where a notification's click
// leads) opens that room, on a fresh load and in an open page.
func TestBrowserShellDeepLink(t *testing.T) {
	b := browser(t)
	app := startApp(t, testConfig(t, t.TempDir()))
	base := "http://" + app.HTTPAddr() + "/"

	dad := tab(t, b)
	logInStaying(t, dad, base, "dad")
	current := func(room string) string {
		return `document.querySelector('#rooms button.room[data-room="` + room + `"]')?.getAttribute('aria-current') === 'true'`
	}
	until(t, dad, "the family room open", current("family"))
	do(t, dad, "follow a link to the parents' room", chromedp.Evaluate[chromedp.Void](`location.hash = 'room=parents'`))
	until(t, dad, "the parents' room open", current("parents"))

	dad2 := sameDevice(t, dad)
	do(t, dad2, "open a link to the parents' room", chromedp.Navigate(base+"#room=parents"))
	until(t, dad2, "online", chatOnline)
	until(t, dad2, "the parents' room open in the new tab", current("parents"))
}
