package obelisk

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// hostFunc performs one host operation: it takes a JSON request and returns
// the host's JSON response, {"ok": value} or {"error": {...}}. The real one
// (abi_wasip1.go) calls the host_call import; tests inject fakes.
type hostFunc func(request []byte) ([]byte, error)

// errNoHost is what host operations return outside an Obelisk host.
var errNoHost = errors.New("obelisk: not running in an Obelisk host")

// HostCall performs the host operation op and decodes its ok value into
// response. It is the raw access to the ABI's host_call import (docs/abi.md),
// on which [Call], [Context.Log] and the obeliskhttp package are built; use it
// for operations this package does not wrap.
//
// The request sent is request encoded as a JSON object, with an "op": op
// member added in front. request must encode as a JSON object (a struct, a
// map with string keys) that has no "op" member of its own, or be nil for a
// request without other members.
//
// The ok value of the response is decoded into response, a pointer, as
// json.Unmarshal does, except that numbers decoded into an interface value
// become json.Number; a *json.RawMessage receives it as is, and a nil
// response discards it. An error response is returned as a [*HostError]
// whose Op is op. A response that is not JSON of the shape the ABI
// specifies means a broken host: HostCall panics.
//
// Outside an Obelisk host, and outside [TestHost], every operation fails.
func (c Context) HostCall(op string, request, response any) error {
	raw, err := invoke(c.host(), op, request)
	if err != nil {
		return err
	}
	if response == nil {
		return nil
	}
	if err := decode(raw, response); err != nil {
		return fmt.Errorf("obelisk: %s: decoding the response %s: %w", op, raw, err)
	}
	return nil
}

// encodeRequest encodes the request of operation op: request's JSON object
// with "op" as its first member.
func encodeRequest(op string, request any) ([]byte, error) {
	if request == nil {
		return append(appendString(append(make([]byte, 0, len(op)+10), `{"op":`...), op), '}'), nil
	}
	body, err := marshal(request)
	if err != nil {
		return nil, err
	}
	if string(body) == "null" {
		body = []byte("{}")
	}
	if len(body) < 2 || body[0] != '{' {
		return nil, fmt.Errorf("%T does not encode as a JSON object", request)
	}
	req := make([]byte, 0, len(`{"op":"",`)+2*len(op)+len(body))
	req = append(req, `{"op":`...)
	req = appendString(req, op)
	if string(body) != "{}" {
		req = append(req, ',')
	}
	return append(req, body[1:]...), nil
}

// invoke sends the operation request to host and returns the ok value of the
// response. An error response is returned as a *HostError. A response that is
// not valid JSON of the expected shape means a broken host: it panics.
func invoke(host hostFunc, op string, request any) (json.RawMessage, error) {
	req, err := encodeRequest(op, request)
	if err != nil {
		return nil, fmt.Errorf("obelisk: %s: encoding the request: %w", op, err)
	}
	return send(host, op, req)
}

// send sends req, the JSON request of operation op, to host and returns the
// ok value of the response, as invoke does.
func send(host hostFunc, op string, req []byte) (json.RawMessage, error) {
	if host == nil {
		host = hostCall
	}
	resp, err := host(req)
	if err != nil {
		return nil, err
	}
	// The host writes a success as {"ok":VALUE}, compact (docs/abi.md). When VALUE is
	// a number, null, true or false, take it without scanning the object (in a replay,
	// this is on every recorded value); anything else is scanned below.
	if len(resp) > len(`{"ok":}`) && string(resp[:len(`{"ok":`)]) == `{"ok":` && resp[len(resp)-1] == '}' {
		if v := resp[len(`{"ok":`) : len(resp)-1]; plainToken(v) {
			return v, nil
		}
	}
	if key, v, ok := singleMember(resp); ok {
		switch string(key) {
		case abi.MemberOk:
			return v, nil
		case abi.MemberError:
			herr := &HostError{Op: op}
			if stringMembers(v, func(key []byte, value string) bool {
				switch string(key) {
				case "kind":
					herr.Kind = value
				case "message":
					herr.Message = value
				default:
					return false
				}
				return true
			}) {
				return nil, herr
			}
		}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(resp, &fields); err != nil {
		panic(fmt.Sprintf("obelisk: %s: malformed host response %q: %v", op, resp, err))
	}
	if raw, ok := fields[abi.MemberError]; ok {
		herr := &HostError{Op: op}
		if err := json.Unmarshal(raw, herr); err != nil {
			panic(fmt.Sprintf("obelisk: %s: malformed host error %q: %v", op, raw, err))
		}
		return nil, herr
	}
	if raw, ok := fields[abi.MemberOk]; ok {
		return raw, nil
	}
	panic(fmt.Sprintf("obelisk: %s: host response %q has neither ok nor error", op, resp))
}

// plainToken reports whether v is made only of the bytes of a JSON number, or is null,
// true or false: a whole value that contains no member separator.
func plainToken(v []byte) bool {
	switch string(v) {
	case "null", "true", "false":
		return true
	}
	for _, c := range v {
		if !('0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return false
		}
	}
	return len(v) > 0
}
