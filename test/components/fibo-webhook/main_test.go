package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskwebhook"
)

func TestFibo(t *testing.T) {
	host := &obelisk.TestHost{
		// Answer the workflow call in place of the fibo_workflow component.
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			if ffqn != "testing:fibo-workflow/workflow.fiboa" || string(params) != "[10,3]" {
				t.Errorf("call %s %s", ffqn, params)
			}
			return json.RawMessage(`{"ok":165}`), nil
		},
	}
	resp := obeliskwebhook.Serve(host, httptest.NewRequest("GET", "/fibo/10/3", nil), map[string]string{"n": "10", "iterations": "3"})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "165" {
		t.Fatalf("GET /fibo/10/3: %d %q", resp.StatusCode, body)
	}
	resp = obeliskwebhook.Serve(host, httptest.NewRequest("GET", "/fibo/x/3", nil), map[string]string{"n": "x", "iterations": "3"})
	if resp.StatusCode != 400 {
		t.Fatalf("GET /fibo/x/3: %d, want 400", resp.StatusCode)
	}
}

func TestWildcardAndConst(t *testing.T) {
	host := &obelisk.TestHost{}
	resp := obeliskwebhook.Serve(host, httptest.NewRequest("POST", "/status/a/b?x=1", nil), map[string]string{"*": "a/b"})
	body, _ := io.ReadAll(resp.Body)
	if want := `POST /status/a/b rest="a/b" query="x=1"`; string(body) != want {
		t.Fatalf("got %q, want %q", body, want)
	}
	resp = obeliskwebhook.Serve(host, httptest.NewRequest("GET", "/const", nil), nil)
	body, _ = io.ReadAll(resp.Body)
	if string(body) != "constant" {
		t.Fatalf("got %q", body)
	}
}

func TestSize(t *testing.T) {
	body := strings.Repeat("0123456789", 20_000)
	resp := obeliskwebhook.Serve(&obelisk.TestHost{}, httptest.NewRequest("POST", "/size", strings.NewReader(body)), nil)
	got, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("%d %d %x", len(body), len(body), sha256.Sum256([]byte(body))); resp.StatusCode != 200 || string(got) != want {
		t.Fatalf("POST /size: %d %q, want %q", resp.StatusCode, got, want)
	}
}
