package replicated

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// RoundTrip encodes tx as a log entry and decodes it, as a node applying the log does.
func RoundTrip(tx *events.Tx) (*events.Tx, error) {
	b, err := encodeBatch([]*pb.LogTx{encodeTx(tx)})
	if err != nil {
		return nil, err
	}
	var e pb.LogEntry
	if err := proto.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	if len(e.GetBatch().GetTxs()) != 1 {
		return nil, fmt.Errorf("not a batch of one tx: %v", &e)
	}
	return decodeTx(e.GetBatch().GetTxs()[0]), nil
}

// StallConsumer stops s's consumer without a replacement, as when the client gives up
// re-creating it, and returns its generation.
func StallConsumer(s *Store) int {
	c := &s.consumer
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cc != nil {
		c.cc.Stop()
		c.cc = nil
	}
	return c.gen
}

// ConsumerGeneration returns how many consumers s started.
func ConsumerGeneration(s *Store) int {
	c := &s.consumer
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}
