package replicated

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// RoundTrip encodes tx as a log entry and decodes it, as a node applying the log does.
func RoundTrip(tx *events.Tx) (*events.Tx, error) {
	b, err := encodeTx(tx)
	if err != nil {
		return nil, err
	}
	var e pb.LogEntry
	if err := proto.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	if e.GetTx() == nil {
		return nil, fmt.Errorf("not a tx entry: %v", &e)
	}
	return decodeTx(e.GetTx()), nil
}
