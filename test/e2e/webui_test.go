package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/obelisk-go/obelisk/test/harness"
)

// The web UI tests drive the UI of a real server (webui.listening_addr) in headless
// Chromium. They are skipped when no Chromium is installed (.ci/run installs it). With
// OBELISK_SCREENSHOTS=1 they write the screenshots of docs/webui-*.png.

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("web UI tests need a Chromium browser: none of chromium, chromium-browser, google-chrome is on PATH (Debian: apt-get install chromium)")
	return ""
}

// browser starts headless Chromium for the test and returns its context. Pages are
// opened in it with open.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// open loads url in a new tab of the browser, as a person opening a link does: the
// document and its modules load fresh, never by a hash change in a page that already
// ran them. An uncaught exception, an unhandled rejection or a console error on the
// page fails the test; the tab is checked and closed when the test ends.
func open(t *testing.T, browser context.Context, url string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(ctx, func(ev any) { // also opens the tab
		var p string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			if d := e.ExceptionDetails; d != nil {
				p = fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, d.Text)
				if d.Exception != nil {
					p += " " + d.Exception.Description
				}
			}
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range e.Args {
					args = append(args, cmp.Or(a.Description, string(a.Value)))
				}
				p = "console." + string(e.Type) + ": " + strings.Join(args, " ")
			}
		case *cdplog.EventEntryAdded:
			// An HTTP error status that the page handles (a call the server does not
			// implement, a child not created yet) is logged as a network error; the
			// page shows it itself, so only the other sources count.
			if e.Entry != nil && e.Entry.Level == cdplog.EntryLevelError && e.Entry.Source != cdplog.EntrySourceNetwork {
				p = fmt.Sprintf("browser log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL)
			}
		}
		if p != "" {
			mu.Lock()
			problems = append(problems, p)
			mu.Unlock()
		}
	})
	if err != nil {
		cancel()
		t.Fatalf("open a tab for %s: %v", url, err)
	}
	t.Cleanup(func() {
		// A round trip first: the events the page sent before it have been listened to.
		_, _ = chromedp.Run(ctx, chromedp.Evaluate[int]("1"))
		cancel()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Errorf("page %s: %s", url, p)
		}
	})
	do(t, ctx, "open "+url, chromedp.Navigate(url))
	return ctx
}

// do runs browser actions with a deadline, failing the test with the step's name.
func do(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	get(t, ctx, step, chromedp.Steps(actions...))
}

// get runs a browser action that returns a value.
func get[T any](t *testing.T, ctx context.Context, step string, action chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, action)
	if err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%s: %v (page %s)", step, err, loc)
	}
	return v
}

// waitJS waits until a JavaScript expression is true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))
}

func evalInt(expr string) chromedp.Action[int] { return chromedp.Evaluate[int](expr) }

// screenshot writes docs/webui-<name>.png when OBELISK_SCREENSHOTS is set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("OBELISK_SCREENSHOTS") == "" {
		return
	}
	do(t, ctx, "settle", chromedp.Sleep(300*time.Millisecond))
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join("..", "..", "docs", "webui-"+name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", p, len(png))
}

func TestWebUI(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	s := harness.Start(t, harness.Options{WebUI: true})
	b := browser(t, chrome)
	const fiboa = "testing:fibo-workflow/workflow.fiboa"
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	statusIs := func(status string) string {
		return `document.querySelector('#status')?.textContent === '` + status + `'`
	}

	// The components page lists exports with their signatures, and imports; the submit
	// link of fiboa opens a form generated from func(n: u8, iterations: u32).
	ctx := open(t, b, s.WebURL+"/#/components")
	do(t, ctx, "components page",
		chromedp.WaitVisible(css(`section.component[data-name="fibo_workflow"] tr.fn[data-ffqn="`+fiboa+`"]`)),
	)
	fiboWorkflow := get(t, ctx, "components text", chromedp.TextContent(css(`section.component[data-name="fibo_workflow"]`)))
	for _, want := range []string{"func(n: u8, iterations: u32) -> result<u64>", "Imports", "testing:fibo/fibo.fibo", "workflow"} {
		if !strings.Contains(fiboWorkflow, want) {
			t.Errorf("components page: the fibo_workflow section lacks %q:\n%s", want, fiboWorkflow)
		}
	}
	screenshot(t, ctx, "components")

	do(t, ctx, "submit form",
		chromedp.Click(css(`a.submit-link[data-ffqn="`+fiboa+`"]`)),
		chromedp.WaitVisible(css(`#submit-form input[name="n"]`)),
		chromedp.SendKeys(css(`#submit-form input[name="n"]`), "10"),
		chromedp.SendKeys(css(`#submit-form input[name="iterations"]`), "3"),
	)
	preview := get(t, ctx, "params preview", chromedp.Text(css(`#params-preview`)))
	hint := get(t, ctx, "hint", chromedp.Text(css(`#submit-form .field .hint`)))
	if preview != "[10, 3]" || !strings.Contains(hint, "0…255") {
		t.Errorf("submit form: params preview %q, hint of n %q", preview, hint)
	}
	screenshot(t, ctx, "submit")

	// Submitting navigates to the execution page, which follows the execution to its end.
	do(t, ctx, "execution page",
		chromedp.Click(css(`#submit`)),
		chromedp.WaitVisible(css(`.exec-page`)),
		waitJS(statusIs("finished")+` && document.querySelectorAll('.timeline .bar.child.outcome-ok').length === 3`),
	)
	id := get(t, ctx, "execution ID", chromedp.AttributeValue(css(`.exec-page`), "data-id")).Value
	result := get(t, ctx, "result", chromedp.Text(css(`#result`)))
	var got map[string]any
	if err := json.Unmarshal([]byte(result), &got); err != nil || fmt.Sprint(got["ok"]) != "165" {
		t.Fatalf("execution page: result %q, want {\"ok\": 165}", result)
	}
	if st, err := s.State(id); err != nil || st.ResultJson != `{"ok":165}` {
		t.Fatalf("API state of %s: %v %v", id, st, err)
	}
	// The timeline has a bar for the execution and one per child; the children are
	// listed with links; the event log shows the join set requests.
	bars := get(t, ctx, "bars", evalInt(`document.querySelectorAll('.timeline .bar').length`))
	childLinks := get(t, ctx, "child links", evalInt(`document.querySelectorAll('#children a.exec-link').length`))
	requests := get(t, ctx, "events", evalInt(`[...document.querySelectorAll('#events .badge')].filter(b => b.textContent === 'join_set_request').length`))
	if bars != 4 || childLinks != 3 || requests != 3 {
		t.Errorf("execution page: %d timeline bars (want 4), %d child links (want 3), %d join_set_request events (want 3)", bars, childLinks, requests)
	}
	screenshot(t, ctx, "execution")

	// A child's page links back to its parent.
	do(t, ctx, "child page",
		chromedp.Click(css(`#children a.exec-link`)),
		waitJS(`document.querySelector('.exec-page')?.dataset.id.startsWith('`+id+`.') && `+statusIs("finished")),
	)
	if parent := get(t, ctx, "parent link", chromedp.AttributeValue(css(`#crumbs a`), "href")).Value; parent != "#/execution/"+id {
		t.Errorf("child page: parent link %q, want #/execution/%s", parent, id)
	}

	// The executions list shows it (top-level only by default) and filters by function.
	ctx = open(t, b, s.WebURL+"/#/executions")
	do(t, ctx, "executions list", chromedp.WaitVisible(css(`tr[data-id="`+id+`"]`)))
	rows := get(t, ctx, "rows", evalInt(`document.querySelectorAll('table.executions tbody tr').length`))
	ctx = open(t, b, s.WebURL+"/#/executions?ffqn=testing:sleep")
	do(t, ctx, "filtered list", waitJS(`document.querySelector('.empty') !== null`))
	if rows != 1 {
		t.Errorf("executions list: %d top-level rows, want 1", rows)
	}

	// A tree of workflows: grandchildren are drawn too.
	tree := s.Submit("testing:tree/tree.spawn", "[2, 2, 50]")
	ctx = open(t, b, s.WebURL+"/#/execution/"+tree)
	do(t, ctx, "tree timeline",
		waitJS(statusIs("finished")+` && document.querySelectorAll('.timeline .bar.child.outcome-ok').length === 10`),
	)
	screenshot(t, ctx, "timeline")
	ctx = open(t, b, s.WebURL+"/#/executions")
	do(t, ctx, "executions list with the tree", chromedp.WaitVisible(css(`tr[data-id="`+tree+`"]`)))
	screenshot(t, ctx, "executions")

	// Pause, unpause and cancel a long durable sleep with the buttons.
	sleep := s.Submit("testing:sleep-workflow/workflow.sleep-durable", "[600000]")
	ctx = open(t, b, s.WebURL+"/#/execution/"+sleep)
	do(t, ctx, "pause and unpause",
		waitJS(statusIs("blocked_by_join_set")),
		chromedp.Click(css(`#pause`)),
		chromedp.WaitVisible(css(`#summary .flag-paused`)),
		chromedp.Click(css(`#unpause`)),
		waitJS(`document.querySelector('#summary .flag-paused') === null && !document.querySelector('#pause').hidden`),
	)
	do(t, ctx, "cancel",
		chromedp.Click(css(`#cancel`)), // asks for a confirmation
		chromedp.WaitVisible(css(`#cancel.confirm`)),
		chromedp.Click(css(`#cancel`)),
		waitJS(statusIs("finished")+` && document.querySelector('#cancel').disabled`),
	)
	if cancelled := get(t, ctx, "cancelled result", chromedp.Text(css(`#result`))); !strings.Contains(cancelled, `"cancelled"`) {
		t.Errorf("cancelled execution's result: %s", cancelled)
	}
	if st, err := s.State(sleep); err != nil || !strings.Contains(st.ResultJson, "cancelled") {
		t.Errorf("API state of the cancelled execution: %v %v", st, err)
	}
}

// TestWebUIFreshLoad opens each page in a new tab, as a person typing its address or
// following a bookmark does, the landing page (http://host:port/) first: each must
// render, with no error on the page. (The landing page once showed only "Cannot access
// 'cursorTrail' before initialization": the first route ran before the module had
// initialised its constants, which a hash change in a loaded page never shows.)
func TestWebUIFreshLoad(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	s := harness.Start(t, harness.Options{WebUI: true})
	const fiboa = "testing:fibo-workflow/workflow.fiboa"
	id := s.Submit(fiboa, "[10, 1]")
	if r := s.Result(id, time.Minute); r != `{"ok":55}` {
		t.Fatalf("fiboa(10, 1) = %s", r)
	}
	if _, errOut, code := s.CLI("schedule", "create", "--name", "yearly", "--cron", "0 0 1 1 *", "--ffqn", "testing:fibo/fibo.fibo", "--params", "[10]"); code != 0 {
		t.Fatalf("schedule create: exit %d: %s", code, errOut)
	}
	b := browser(t, chrome)
	for _, page := range []struct{ path, ready string }{
		{"/", `table.executions tr[data-id="` + id + `"]`},
		{"/#/executions?ffqn=testing:fibo-workflow/&limit=50", `table.executions tr[data-id="` + id + `"]`},
		{"/#/execution/" + id, `#status`},
		{"/#/components", `section.component[data-name="fibo_workflow"]`},
		{"/#/schedules", `table.schedules tr[data-name="yearly"]`},
		{"/#/submit", `#fn-select`},
		{"/#/submit/" + fiboa, `#submit-form input[name="n"]`},
	} {
		t.Run(page.path, func(t *testing.T) {
			ctx := open(t, b, s.WebURL+page.path)
			// A page that fails to load shows the error in its place: wait for either,
			// and fail with what it shows.
			do(t, ctx, "render", waitJS(`document.querySelector('`+page.ready+`') || document.querySelector('#app .error')`))
			if shown := get(t, ctx, "error shown", chromedp.Evaluate[string](`document.querySelector('#app .error')?.textContent ?? ''`)); shown != "" {
				t.Fatalf("shows the error %q instead of the page", shown)
			}
			if page.path == "/" {
				if active := get(t, ctx, "active tab", chromedp.TextContent(chromedp.CSS(`header nav a.active`))); active != "Executions" {
					t.Errorf("the active tab is %q, want Executions", active)
				}
			}
		})
	}
}

// TestWebUILogs opens an activity's and a workflow's execution pages fresh: each shows the
// lines the execution logged.
func TestWebUILogs(t *testing.T) {
	t.Parallel()
	chrome := chromiumPath(t)
	s := harness.Start(t, harness.Options{WebUI: true})
	fibo := s.Submit("testing:fibo/fibo.fibo", "[10]")
	wf := s.Submit("testing:sleep-workflow/workflow.sleep-then-call", "[10, 10]")
	for _, id := range []string{fibo, wf} {
		if r := s.Result(id, time.Minute); r != `{"ok":55}` {
			t.Fatalf("%s = %s", id, r)
		}
	}
	b := browser(t, chrome)
	for _, page := range []struct {
		id   string
		want []string // level, then message, per line
	}{
		{fibo, []string{"info fibo(10) = 55"}},
		{wf, []string{"info sleeping 10 ms", "info slept; calling fibo(10)", "warn result: fibo(10) returned 55"}},
	} {
		ctx := open(t, b, s.WebURL+"/#/execution/"+page.id)
		do(t, ctx, "logs of "+page.id, waitJS(`document.querySelector('#status')?.textContent === 'finished' && document.querySelectorAll('#logs tr.log').length > 0`))
		got := get(t, ctx, "log lines", chromedp.Evaluate[[]string](
			`[...document.querySelectorAll('#logs tr.log')].map(r => r.querySelector('.badge').textContent + ' ' + r.querySelector('.message').textContent)`))
		if strings.Join(got, "\n") != strings.Join(page.want, "\n") {
			t.Errorf("execution page of %s shows the lines %q, want %q", page.id, got, page.want)
		}
		if none := get(t, ctx, "no-logs note", chromedp.Evaluate[bool](`document.querySelector('#logs-none').hidden`)); !none {
			t.Errorf("execution page of %s still says there are no logs", page.id)
		}
	}
}
