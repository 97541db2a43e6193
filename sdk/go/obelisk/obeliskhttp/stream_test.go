package obeliskhttp_test

import (
	"bufio"
	"encoding/json"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskhttp"
)

// TestStreamingClient: the request asks for a stream, the body is read chunk by chunk
// with http_body_read until EOF, and a body closed early is closed in the host.
func TestStreamingClient(t *testing.T) {
	chunks := []abi.HTTPBodyChunk{{Data: []byte("one\ntw")}, {Data: []byte("o\n")}, {Data: []byte("three\n"), EOF: true}}
	var asked abi.HTTPRequest
	var reads, closes int
	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{
		abi.OpHTTP: func(req json.RawMessage) (any, error) {
			if err := json.Unmarshal(req, &asked); err != nil {
				return nil, err
			}
			return abi.HTTPResponse{Status: 200, Headers: map[string][]string{"Content-Type": {"text/plain"}}, BodyStream: 7}, nil
		},
		abi.OpHTTPBodyRead: func(req json.RawMessage) (any, error) {
			var q abi.HTTPBodyReadRequest
			if err := json.Unmarshal(req, &q); err != nil || q.Stream != 7 {
				return nil, &obelisk.HostError{Kind: obelisk.KindNotFound, Message: string(req)}
			}
			reads++
			c := chunks[0]
			chunks = chunks[1:]
			return c, nil
		},
		abi.OpHTTPBodyClose: func(req json.RawMessage) (any, error) {
			closes++
			return nil, nil
		},
	}}
	all := register(func(ctx obelisk.Context) ([]string, error) {
		resp, err := obeliskhttp.StreamingClient(ctx).Get("http://127.0.0.1:1/lines")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var lines []string
		for s := bufio.NewScanner(resp.Body); s.Scan(); {
			lines = append(lines, s.Text())
		}
		return lines, nil
	})
	if out := string(host.Run(all)); out != `{"ok":["one","two","three"]}` {
		t.Fatalf("got %s", out)
	}
	if !asked.Stream || reads != 3 || closes != 0 {
		t.Fatalf("stream %v, %d reads, %d closes (the host closes a stream at its end)", asked.Stream, reads, closes)
	}

	chunks = []abi.HTTPBodyChunk{{Data: []byte("first\nsecond")}}
	first := register(func(ctx obelisk.Context) (string, error) {
		resp, err := obeliskhttp.StreamingClient(ctx).Get("http://127.0.0.1:1/lines")
		if err != nil {
			return "", err
		}
		s := bufio.NewScanner(resp.Body)
		s.Scan()
		return s.Text(), resp.Body.Close()
	})
	if out := string(host.Run(first)); out != `{"ok":"first"}` || closes != 1 {
		t.Fatalf("got %s, %d closes", out, closes)
	}
}
