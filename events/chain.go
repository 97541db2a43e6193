package events

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Hash chains: what makes an execution's history tamper-evident.
//
// Each stored event carries a link chained to the one before it in its stream, and each
// stored response likewise in its execution's response log:
//
//	h(-1) = SHA-256("obelisk chain\x00" || log || "\x00" || execution ID)   log: "e" or "r"
//	h(i)  = SHA-256(h(i-1) || body(i))              field 100: responses, older events
//	h(i)  = SHA-256(h(i-1) || SHA-256(body(i)))     field 101: events (chainFieldBody)
//
// where body(i) is the item's stored bytes without its link. The link is the item's own
// proto field (Event.chain, Response.chain, field 100; or field 101, which only the
// store knows), which the writer appends after the marshalled body, so that the stored
// value stays an ordinary message and the link is always the value's last field. A flipped byte anywhere in the value breaks
// a link: in the body, h(i) no longer matches; in the link, likewise; in the field's tag or
// length, the value no longer ends with a well-formed link. Seeding with the execution ID
// keeps a whole stream from passing for another execution's.
//
// Invariants:
//   - Every item the writer stores is linked (the one write path, tx.go); the link of the
//     last event and of the last response are kept in the stored ExecutionState
//     (event_chain, response_chain), which is written in the same batch, so an append
//     chains to its predecessor without reading it.
//   - Readers never see the links: Events, Responses and EventsFrom cut them off before
//     decoding (unmarshalStored), and the writer ignores a link set on an item it is
//     given (a fork copies events it read).
//   - A store created with chains is marked so (chainedKey, view.go): every item in it
//     must be linked. A store upgraded to chains is marked with the last global position
//     given before (chainedSinceKey): every item of an execution created after it must
//     be linked.
//   - A store written before chains existed holds unlinked items. A stream's chain starts
//     at its first linked item (seeded with h(-1)); the unlinked items before it are
//     counted as unchained, not reported as broken. After a linked item every item must
//     be linked, and the last link must equal the state's.
//   - The links are no part of the fold: Refold leaves them empty and snapshot.Compare
//     ignores them; CheckChains checks them instead.
//
// The chain detects damage and naive edits. Someone who rewrites an item and every link
// after it, and the state, is not detected by the chain alone: that needs the head kept
// elsewhere (an anchor), which is a matter for the operator.

// chainField is the field number of Event.chain and Response.chain.
const chainField protowire.Number = 100

// chainFieldBody is the field number of an event's link of the second kind:
//
//	h(i) = SHA-256(h(i-1) || SHA-256(body(i)))
//
// Commit marshals an appended event and hashes its body on the committer's goroutine,
// and the writer, which alone knows h(i-1), hashes 64 bytes whatever the event's size
// (prepareEvents). Events are linked so since this kind exists, responses (whose cursor
// the writer sets) and older events with field 100. A link's field number says which
// it is, so one chain may hold both, and what was linked before still checks. The field
// is not in the proto: readers cut the link off before they decode (unmarshalStored).
const chainFieldBody protowire.Number = 101

// linkSize is the size of a link (SHA-256).
const linkSize = sha256.Size

// chainSuffix is the size of the encoded link field: its tag, its length, the link.
var chainSuffix = protowire.SizeTag(chainField) + protowire.SizeBytes(linkSize)

// The two kinds of log a chain runs through.
const (
	chainEvents    = 'e'
	chainResponses = 'r'
)

// chainSeed returns h(-1) of an execution's events or responses.
func chainSeed(log byte, id string) []byte {
	h := sha256.New()
	h.Write([]byte("obelisk chain\x00"))
	h.Write([]byte{log, 0})
	h.Write([]byte(id))
	return h.Sum(nil)
}

// chainLink returns SHA-256(prev || body).
func chainLink(prev, body []byte) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(body)
	return h.Sum(make([]byte, 0, linkSize))
}

// linkTags are the encoded tag and length of a link field of each kind: what a linked
// stored value's last chainSuffix bytes start with.
var linkTags = [2][]byte{
	protowire.AppendVarint(protowire.AppendTag(nil, chainField, protowire.BytesType), linkSize),
	protowire.AppendVarint(protowire.AppendTag(nil, chainFieldBody, protowire.BytesType), linkSize),
}

// preparedEvent is an appended event marshalled, without a link, by Commit; body has
// room for the link field after it.
type preparedEvent struct {
	body []byte
	sum  [sha256.Size]byte // SHA-256(body)
}

// prepareEvents marshals the events of tx's appends and hashes their bodies, on the
// committer's goroutine (Commit, ApplyLogged), so that the writer only links them
// (linkPrepared). again prepares an append prepared before too: Commit does, as the
// caller may have changed its events since (a Tx committed again).
func prepareEvents(tx *Tx, again bool) error {
	for i := range tx.Appends {
		a := &tx.Appends[i]
		if !again && a.prepared != nil && len(a.prepared) == len(a.Events) {
			continue
		}
		a.prepared = make([]preparedEvent, len(a.Events))
		for j, ev := range a.Events {
			ev = unlinkedEvent(ev)
			size := proto.Size(ev)
			body, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(make([]byte, 0, size+chainSuffix), ev)
			if err != nil {
				a.prepared = nil
				return fmt.Errorf("append %s v%d: marshal: %w", a.ExecutionID, a.ExpectedVersion+uint32(j), err)
			}
			a.prepared[j] = preparedEvent{body: body, sum: sha256.Sum256(body)}
		}
	}
	return nil
}

// linkPrepared returns the stored bytes of a prepared event linked to prev (a link of
// the second kind, chainFieldBody), and its link.
func linkPrepared(p preparedEvent, prev []byte) (stored, link []byte) {
	var in [2 * linkSize]byte
	copy(in[:linkSize], prev)
	copy(in[linkSize:], p.sum[:])
	sum := sha256.Sum256(in[:])
	link = append(make([]byte, 0, linkSize), sum[:]...)
	stored = append(p.body, linkTags[1]...)
	return append(stored, link...), link
}

// bodyLink returns SHA-256(prev || SHA-256(body)), a link of the second kind.
func bodyLink(prev, body []byte) []byte {
	sum := sha256.Sum256(body)
	return chainLink(prev, sum[:])
}

// unmarshalStored decodes a stored event or response into m without its link: the link
// is cut off first (a link decoded would cost an allocation, and one of the second kind
// a field the message does not know), by its place (last) and its tag.
func unmarshalStored(stored []byte, m proto.Message) error {
	if n := len(stored) - chainSuffix; n >= 0 {
		tag := stored[n : n+chainSuffix-linkSize]
		if bytes.Equal(tag, linkTags[0]) || bytes.Equal(tag, linkTags[1]) {
			if err := proto.Unmarshal(stored[:n], m); err == nil {
				return nil
			}
			// Not a link after all (a value from before chains that happens to end so):
			// decoded whole below.
		}
	}
	return proto.Unmarshal(stored, m)
}

// marshalLinked marshals m (whose own link must be empty) and appends its link to prev,
// returning the stored bytes and the link.
func marshalLinked(m proto.Message, prev []byte) (stored, link []byte, err error) {
	// One buffer, prev || body || link field: the hash of its start is the link, and
	// neither the hash nor the stored value costs an allocation of its own.
	size := proto.Size(m)
	buf := append(make([]byte, 0, len(prev)+size+chainSuffix), prev...)
	buf, err = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, m)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(buf)
	link = append(make([]byte, 0, linkSize), sum[:]...)
	buf = protowire.AppendTag(buf, chainField, protowire.BytesType)
	buf = protowire.AppendBytes(buf, link)
	return buf[len(prev):], link, nil
}

// unlinkedEvent returns ev without a link: the event itself if it has none.
func unlinkedEvent(ev *pb.Event) *pb.Event {
	if len(ev.Chain) == 0 {
		return ev
	}
	c := proto.CloneOf(ev)
	c.Chain = nil
	return c
}

// splitLink splits a stored value into its body and its link. linked is false if the
// value has no link (written before chains); err says why a value is not a well-formed
// message or has its link anywhere but last.
func splitLink(stored []byte) (body, link []byte, linked bool, err error) {
	body, link, _, linked, err = splitLinkKind(stored)
	return body, link, linked, err
}

// splitLinkKind is splitLink, and says whether the link is of the second kind
// (chainFieldBody).
func splitLinkKind(stored []byte) (body, link []byte, ofBody, linked bool, err error) {
	rest := stored
	for len(rest) > 0 {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, nil, false, false, fmt.Errorf("malformed field tag at byte %d: %w", len(stored)-len(rest), protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			return nil, nil, false, false, fmt.Errorf("malformed field %d at byte %d: %w", num, len(stored)-len(rest), protowire.ParseError(m))
		}
		if num == chainField || num == chainFieldBody {
			if typ != protowire.BytesType || len(rest) != n+m {
				return nil, nil, false, false, fmt.Errorf("the link (field %d) is not the last field at byte %d", num, len(stored)-len(rest))
			}
			v, _ := protowire.ConsumeBytes(rest[n:])
			if len(v) != linkSize {
				return nil, nil, false, false, fmt.Errorf("the link is %d bytes, not %d", len(v), linkSize)
			}
			return stored[:len(stored)-len(rest)], v, num == chainFieldBody, true, nil
		}
		rest = rest[n+m:]
	}
	return stored, nil, false, false, nil
}

// ChainBreakError names the first broken link of an execution's events or responses.
type ChainBreakError struct {
	ExecutionID string
	// Log is "event" or "response".
	Log string
	// Index is the event's version or the response's cursor; for a state whose link
	// differs from its log's last one, the state's next version or response count.
	Index  uint32
	Reason string
}

// Error names the execution, the item and why its link is broken.
func (e *ChainBreakError) Error() string {
	return fmt.Sprintf("execution %s: hash chain broken at %s %d: %s", e.ExecutionID, e.Log, e.Index, e.Reason)
}

// ChainCounts counts what a chain check looked at.
type ChainCounts struct {
	// Linked is the number of items whose link was checked.
	Linked int
	// Unchained is the number of items stored before chains existed (no link), which
	// cannot be checked.
	Unchained int
}

// Add adds o's counts to c.
func (c *ChainCounts) Add(o ChainCounts) {
	c.Linked += o.Linked
	c.Unchained += o.Unchained
}

// checkChain checks the chain of one log of execution id: the values of the keys from
// lower (inclusive) to upper, expected to be indexes 0..n-1, ending at head (the
// state's link). A broken link is returned as a *ChainBreakError; a failure to read as
// another error.
func checkChain(r pebble.Reader, id string, log byte, lower, upper []byte, n uint32, head []byte, linkedOnly bool) (ChainCounts, error) {
	var counts ChainCounts
	name := "event"
	if log == chainResponses {
		name = "response"
	}
	broken := func(i uint32, format string, args ...any) (ChainCounts, error) {
		return counts, &ChainBreakError{ExecutionID: id, Log: name, Index: i, Reason: fmt.Sprintf(format, args...)}
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return counts, fmt.Errorf("check the %s chain of %s: %w", name, id, err)
	}
	defer it.Close()
	// prev is nil until the first linked item. It is a copy: the iterator's value is
	// valid only until it moves.
	var prev []byte
	var prevBuf [linkSize]byte
	i := uint32(0)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < 4 {
			return broken(i, "malformed key %q", k)
		}
		if at := uint32(k[len(k)-4])<<24 | uint32(k[len(k)-3])<<16 | uint32(k[len(k)-2])<<8 | uint32(k[len(k)-1]); at != i {
			return broken(i, "missing: the next stored %s is %d", name, at)
		}
		body, link, ofBody, linked, err := splitLinkKind(it.Value())
		if err != nil {
			return broken(i, "%v", err)
		}
		switch {
		case !linked && linkedOnly:
			return broken(i, "no link, in an execution created with hash chains")
		case !linked && prev != nil:
			return broken(i, "no link, after linked %ss", name)
		case !linked:
			counts.Unchained++
		default:
			if prev == nil {
				prev = chainSeed(log, id)
			}
			var want []byte
			if ofBody {
				want = bodyLink(prev, body)
			} else {
				want = chainLink(prev, body)
			}
			if string(want) != string(link) {
				return broken(i, "stored link %x, but the bytes stored chain to %x", link[:8], want[:8])
			}
			prev = append(prevBuf[:0], link...)
			counts.Linked++
		}
		i++
	}
	if err := it.Error(); err != nil {
		return counts, fmt.Errorf("check the %s chain of %s: %w", name, id, err)
	}
	switch {
	case i != n:
		return broken(i, "the state counts %d %ss, the store holds %d", n, name, i)
	case string(prev) != string(head):
		return broken(n, "the state's link %x is not the last %s's %x", short(head), name, short(prev))
	}
	return counts, nil
}

func short(link []byte) []byte { return link[:min(len(link), 8)] }

// checkChains checks both chains of the execution of st (View.CheckChains).
func checkChains(r pebble.Reader, st *pb.ExecutionState, linkedOnly bool) (events, responses ChainCounts, err error) {
	id := st.ExecutionId
	prefix := append(key(tagEvent, []byte(id)), 0)
	events, err = checkChain(r, id, chainEvents, prefix, prefixEnd(prefix), st.NextVersion, st.EventChain, linkedOnly)
	if err != nil {
		return events, responses, err
	}
	prefix = append(key(tagResponse, []byte(id)), 0)
	responses, err = checkChain(r, id, chainResponses, prefix, prefixEnd(prefix), st.ResponseCount, st.ResponseChain, linkedOnly)
	return events, responses, err
}
