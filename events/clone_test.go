package events_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestCloneStateCopiesEveryField: CloneState lists the fields by hand (it is on the hot
// path), so a field added to ExecutionState and forgotten there would be silently reset
// by every fold. Every field is set here, from the message's own descriptor.
func TestCloneStateCopiesEveryField(t *testing.T) {
	st := &pb.ExecutionState{}
	m := st.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			m.Mutable(fd).Map().Set(protoreflect.ValueOfString("js").MapKey(), protoreflect.ValueOfMessage((&pb.JoinSetCounters{Requests: 1, Responses: 2, JoinNexts: 3}).ProtoReflect()))
		case fd.Kind() == protoreflect.MessageKind:
			m.Set(fd, protoreflect.ValueOfMessage((&pb.RetryConfig{MaxRetries: uint32(i + 1)}).ProtoReflect()))
			if m.Get(fd).Message().Descriptor().FullName() != "obelisk.storage.v1.RetryConfig" {
				t.Fatalf("field %s: a message of a type this test does not fill", fd.Name())
			}
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(string(fd.Name())))
		case fd.Kind() == protoreflect.BytesKind:
			m.Set(fd, protoreflect.ValueOfBytes([]byte(fd.Name())))
		case fd.Kind() == protoreflect.BoolKind:
			m.Set(fd, protoreflect.ValueOfBool(true))
		case fd.Kind() == protoreflect.EnumKind:
			m.Set(fd, protoreflect.ValueOfEnum(1))
		case fd.Kind() == protoreflect.Uint32Kind:
			m.Set(fd, protoreflect.ValueOfUint32(uint32(i+1)))
		case fd.Kind() == protoreflect.Int64Kind:
			m.Set(fd, protoreflect.ValueOfInt64(int64(i+1)))
		default:
			t.Fatalf("field %s: kind %s not filled by this test", fd.Name(), fd.Kind())
		}
	}
	if c := events.CloneState(st); !proto.Equal(c, st) {
		t.Fatalf("CloneState lost fields:\n got %v\nwant %v", c, st)
	}
}
