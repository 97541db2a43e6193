package oci

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/obelisk-go/obelisk/wasmstore"
)

// Location is a component's location.oci.
type Location struct {
	Component string // the component's name, for messages
	Reference string // as written in the config: the lock's key
}

// Resolved is a Location resolved to an artifact whose wasm the store holds.
type Resolved struct {
	Location
	Artifact
	// Path is the wasm file in the store, which the engine loads.
	Path string
}

// MismatchError is a locked reference for which the registry now serves another
// manifest: the start is refused, the lock is left as it was.
type MismatchError struct {
	Component, Reference string
	Locked, Served       string // manifest digests
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("component %q: %s is locked to manifest %s (obelisk.lock), but the registry now serves %s: refusing to run other code than the lock pins; if the new content is intended, accept it with `obelisk component update %s`",
		e.Component, e.Reference, e.Locked, e.Served, e.Component)
}

// NotLockedError is a location whose reference the lock does not have, under --locked.
type NotLockedError struct {
	Component, Reference string
}

func (e *NotLockedError) Error() string {
	return fmt.Sprintf("component %q: %s is not in obelisk.lock, and --locked refuses anything the lock does not pin: run `obelisk component update %s` (or start without --locked) to lock it",
		e.Component, e.Reference, e.Component)
}

// Resolver resolves the OCI locations of a config against its lock and pulls what the
// store lacks.
//
// A locked tag is resolved again at every start when the registry answers, and must
// still name the locked manifest (else MismatchError): a tag moved under a deployment is
// noticed at its next start, not at the first start whose cache is cold. When the
// registry cannot be asked (down, unreachable, no answer within ResolveTimeout, or any
// error) and the store holds the locked wasm, the lock is used as it is, with a warning.
// A digest reference (@sha256:...) is never asked about again once its wasm is stored:
// its content cannot change.
type Resolver struct {
	Client *Client
	Store  *wasmstore.Store
	Logger *slog.Logger
	// Locked refuses a location whose reference the lock does not have (NotLockedError)
	// instead of resolving and locking it (`obelisk server run --locked`).
	Locked bool
}

// Resolve resolves every location (each reference once) and returns them in order.
// lock is updated with the references it lacked and those re-resolved; update, if not
// nil, says which locations are re-resolved whatever the lock says (`obelisk component
// update`). On an error, lock may hold some of the new entries: the caller writes it
// only after a success.
func (r *Resolver) Resolve(ctx context.Context, locs []Location, lock *Lock, update func(Location) bool) ([]Resolved, error) {
	// Components sharing a reference share its lock entry: updating one updates it for all.
	updated := map[string]bool{}
	for _, loc := range locs {
		if update != nil && update(loc) {
			updated[loc.Reference] = true
		}
	}
	done := map[string]Artifact{}
	out := make([]Resolved, 0, len(locs))
	for _, loc := range locs {
		a, ok := done[loc.Reference]
		if !ok {
			var err error
			if a, err = r.one(ctx, loc, lock, updated[loc.Reference]); err != nil {
				return nil, err
			}
			done[loc.Reference] = a
		}
		path, err := r.Store.Path(a.WasmDigest)
		if err != nil {
			return nil, fmt.Errorf("component %q: %w", loc.Component, err)
		}
		out = append(out, Resolved{Location: loc, Artifact: a, Path: path})
	}
	return out, nil
}

func (r *Resolver) one(ctx context.Context, loc Location, lock *Lock, update bool) (Artifact, error) {
	ref, err := ParseReference(loc.Reference)
	if err != nil {
		return Artifact{}, fmt.Errorf("component %q: location.oci: %w", loc.Component, err)
	}
	entry, locked := lock.Get(loc.Reference)
	switch {
	case update:
		locked = false
	case !locked && r.Locked:
		return Artifact{}, &NotLockedError{Component: loc.Component, Reference: loc.Reference}
	}
	if !locked {
		digest, err := r.Client.Resolve(ctx, ref)
		if err != nil {
			return Artifact{}, fmt.Errorf("component %q: %w", loc.Component, err)
		}
		a, err := r.pull(ctx, loc, ref, digest)
		if err != nil {
			return Artifact{}, err
		}
		lock.Set(LockEntry{Reference: loc.Reference, ManifestDigest: a.ManifestDigest, WasmDigest: a.WasmDigest})
		return a, nil
	}
	a := Artifact{ManifestDigest: entry.ManifestDigest, WasmDigest: entry.WasmDigest}
	cached := r.Store.Has(entry.WasmDigest)
	switch {
	case ref.digest != "":
		if ref.digest != entry.ManifestDigest { // a lock edited by hand, or a reference changed by a digest
			return Artifact{}, &MismatchError{Component: loc.Component, Reference: loc.Reference, Locked: entry.ManifestDigest, Served: ref.digest}
		}
	default:
		served, err := r.Client.Resolve(ctx, ref)
		switch {
		case err != nil && cached:
			r.Logger.Warn("oci: cannot ask the registry what the tag names now: using the locked digest, whose wasm the component store holds",
				"component", loc.Component, "reference", loc.Reference, "locked", entry.ManifestDigest, "err", err)
			return a, nil
		case err != nil:
			return Artifact{}, fmt.Errorf("component %q: %s is locked to %s, whose wasm %s is not in the component store, and the registry cannot be asked for it: %w",
				loc.Component, loc.Reference, entry.ManifestDigest, entry.WasmDigest, err)
		case served != entry.ManifestDigest:
			return Artifact{}, &MismatchError{Component: loc.Component, Reference: loc.Reference, Locked: entry.ManifestDigest, Served: served}
		}
	}
	if cached {
		return a, nil
	}
	pulled, err := r.pull(ctx, loc, ref, entry.ManifestDigest)
	if err != nil {
		return Artifact{}, err
	}
	if pulled.WasmDigest != entry.WasmDigest {
		return Artifact{}, fmt.Errorf("component %q: manifest %s of %s has the wasm %s, but obelisk.lock says %s: the lock was edited by hand? re-resolve with `obelisk component update %s`",
			loc.Component, entry.ManifestDigest, loc.Reference, pulled.WasmDigest, entry.WasmDigest, loc.Component)
	}
	return pulled, nil
}

func (r *Resolver) pull(ctx context.Context, loc Location, ref Reference, digest string) (Artifact, error) {
	start := time.Now()
	a, err := r.Client.Pull(ctx, ref, digest, r.Store)
	if err != nil {
		return Artifact{}, fmt.Errorf("component %q: %w", loc.Component, err)
	}
	r.Logger.Info("oci: pulled component", "component", loc.Component, "reference", loc.Reference,
		"manifest", a.ManifestDigest, "wasm", a.WasmDigest, "took", time.Since(start))
	return a, nil
}
