package replicated_test

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/replicated"
)

var protoMessage = reflect.TypeFor[proto.Message]()

// fill sets every exported field reachable from v to a value other than its zero; a
// protobuf message is set to an empty one (its content is protobuf's to encode).
func fill(t *testing.T, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(t, s.Index(0), path+"[0]")
		v.Set(s)
	case reflect.Pointer:
		n := reflect.New(v.Type().Elem())
		if !v.Type().Implements(protoMessage) {
			fill(t, n.Elem(), path)
		}
		v.Set(n)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fill(t, v.Field(i), path+"."+f.Name)
			}
		}
	default:
		t.Fatalf("%s: a %s, which the test cannot fill: extend it", path, v.Kind())
	}
}

// same reports the first field where a and b differ ("" if none).
func same(a, b reflect.Value, path string) string {
	if a.Kind() == reflect.Pointer && a.Type().Implements(protoMessage) {
		if a.IsNil() != b.IsNil() || !a.IsNil() && !proto.Equal(a.Interface().(proto.Message), b.Interface().(proto.Message)) {
			return path
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() != b.Len() {
			return path
		}
		for i := range a.Len() {
			if d := same(a.Index(i), b.Index(i), path+"[i]"); d != "" {
				return d
			}
		}
	case reflect.Pointer:
		if a.IsNil() != b.IsNil() {
			return path
		}
		if !a.IsNil() {
			return same(a.Elem(), b.Elem(), path)
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				if d := same(a.Field(i), b.Field(i), path+"."+f.Name); d != "" {
					return d
				}
			}
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return path
		}
	}
	return ""
}

// TestCodecKeepsEveryField: every exported field of a Tx, at any depth, survives the
// log's encoding, but Snapshots, which stay on their node, and a log line's Seq, which
// the store sets: a field added to events.Tx
// and forgotten in the codec fails here instead of being dropped on the other nodes.
func TestCodecKeepsEveryField(t *testing.T) {
	var tx events.Tx
	fill(t, reflect.ValueOf(&tx).Elem(), "Tx")
	tx.Snapshots = nil
	tx.Logs[0].Lines[0].Seq = 0
	got, err := replicated.RoundTrip(&tx)
	if err != nil {
		t.Fatal(err)
	}
	if d := same(reflect.ValueOf(tx), reflect.ValueOf(*got), "Tx"); d != "" {
		t.Fatalf("%s differs after the round trip: sent %+v, got %+v", d, tx, *got)
	}
}
