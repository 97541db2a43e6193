package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/obelisk-go/obelisk/internal/atomicfile"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// Versions: executions are pinned to the component they were created with.
//
// A component's ID names its file's digest, and every Created and Locked event records
// it. At start the engine puts the file of every deployed component in the data
// directory's component store (package wasmstore) and records, in VersionsFile, what
// each version needs to run again: its type, name, digest and configuration. The
// executions that have not finished yet say which versions they need: a needed version
// that the configuration no longer deploys is loaded from the store as a retired
// version, which runs the executions pinned to it, and nothing new (registry.route
// never picks it). A recorded version that is neither deployed nor needed is dropped,
// record and file, at start; a retired version is dropped, record and file, as soon as
// the last execution pinned to it finishes or is moved to another component
// (Engine.versionFinished): it takes no new
// ones, so none can come back. Its compiled module stays in memory, unused, until the
// next start.
//
// Executions recorded before versions were (or with a component ID that was never
// recorded) run on the deployed component exporting their function, as they always did.

// VersionsFile is the record of component versions in a data directory.
const VersionsFile = "component-versions.json"

// versionRecord is what a component version needs to run again after a restart.
type versionRecord struct {
	Type   ComponentType   `json:"type"`
	Name   string          `json:"name"`
	Digest string          `json:"digest"`
	Config ComponentConfig `json:"config"` // Path not kept: the file is Digest in the store
	// Deployed: the configuration of the last start deployed it; otherwise it is a
	// retired version. An offline check (OpenOffline) rebuilds the registry from it.
	Deployed bool `json:"deployed,omitempty"`
	// Order is 1 + its place in the configuration that deployed it last: of two
	// components exporting a function, the one declared later is the newest
	// (buildRegistry), which an offline check must pick as the server did. 0 in a
	// record written before it was kept.
	Order int `json:"order,omitempty"`
}

// load returns the configuration that loads version rec from files: its file, whose
// bytes are checked against the digest. The error matches wasmstore.ErrNotFound when
// the file is not there (Path then names the file expected).
func (rec versionRecord) load(files *wasmstore.Store) (ComponentConfig, error) {
	p, err := files.Path(rec.Digest)
	if err == nil {
		_, err = files.Get(rec.Digest)
	}
	cfg := rec.Config
	cfg.Path, cfg.Name, cfg.Type = p, rec.Name, rec.Type
	return cfg, err
}

type versionsDoc struct {
	// Versions by component ID.
	Versions map[string]versionRecord `json:"versions"`
}

// versions are the component versions of a data directory: the store of their files and
// the record of them.
type versions struct {
	files *wasmstore.Store
	path  string // of the record

	// saveMu guards doc and the files once the engine runs (versionFinished).
	saveMu sync.Mutex
	doc    versionsDoc

	// liveMu guards live: the unfinished executions of each retired version, by ID.
	liveMu sync.Mutex
	live   map[string]int
}

func openVersions(dataDir string) (*versions, error) {
	files, err := wasmstore.Open(filepath.Join(dataDir, wasmstore.DirName))
	if err != nil {
		return nil, err
	}
	v := &versions{files: files, path: filepath.Join(dataDir, VersionsFile), live: map[string]int{}}
	if v.doc, err = readVersions(v.path); err != nil {
		return nil, err
	}
	return v, nil
}

// readVersions reads the record of component versions at path; none is an empty one.
func readVersions(path string) (versionsDoc, error) {
	doc := versionsDoc{Versions: map[string]versionRecord{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return doc, fmt.Errorf("read component versions: %w", err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return doc, fmt.Errorf("read component versions %s: %w (it records the versions unfinished executions run on: restore it from a backup, or delete it to run them on the deployed components)", path, err)
	}
	if doc.Versions == nil {
		doc.Versions = map[string]versionRecord{}
	}
	return doc, nil
}

// componentID is the ID of a component of type t named name, whose file (or, without
// one, identifying bytes) has digest.
func componentID(t ComponentType, name, digest string) string {
	return fmt.Sprintf("%s:%s:%s", t, name, digest)
}

// deploy stores the file of every deployed component that has one and records its
// version; it returns their IDs.
func (v *versions) deploy(cfgs []ComponentConfig) (map[string]bool, error) {
	ids := map[string]bool{}
	for i, cfg := range cfgs {
		if cfg.Path == "" || cfg.Type == ActivityNative || cfg.Type == ActivityStub && cfg.WIT != "" {
			continue // no file: loadComponent reports a missing one
		}
		wasm, err := os.ReadFile(cfg.Path)
		if err != nil {
			continue // loadComponent reports it, in the config's order
		}
		digest, err := v.files.Put(wasm)
		if err != nil {
			return nil, fmt.Errorf("component %q: %w", cfg.Name, err)
		}
		id := componentID(cfg.Type, cfg.Name, digest)
		rec := versionRecord{Type: cfg.Type, Name: cfg.Name, Digest: digest, Config: cfg, Deployed: true, Order: i + 1}
		rec.Config.Path = ""
		v.doc.Versions[id] = rec
		ids[id] = true
	}
	return ids, nil
}

// retire returns the configurations of the recorded versions that live executions
// (their component IDs) need and deployed does not hold, to be loaded from the store, and
// forgets the records of versions that nothing needs. unknown counts the live
// executions whose component has no record. A needed file that is corrupt is an error:
// its executions would run on other code.
func (v *versions) retire(deployed map[string]bool, live map[string]int) (retired []ComponentConfig, unknown int, err error) {
	for id, rec := range v.doc.Versions {
		if deployed[id] {
			continue
		}
		if live[id] == 0 || rec.Type != ActivityWasm && rec.Type != Workflow {
			// Nothing left to run on it (webhook requests and stubs are not run again).
			delete(v.doc.Versions, id)
			continue
		}
		cfg, err := rec.load(v.files)
		if errors.Is(err, wasmstore.ErrNotFound) {
			delete(v.doc.Versions, id) // its executions run as if unrecorded
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("component %q, version %s, which %d unfinished executions need: %w", rec.Name, rec.Digest, live[id], err)
		}
		rec.Deployed = false
		v.doc.Versions[id] = rec
		retired = append(retired, cfg)
		v.live[id] = live[id]
	}
	sort.Slice(retired, func(i, j int) bool { return retired[i].Path+retired[i].Name < retired[j].Path+retired[j].Name })
	for id, n := range live {
		if _, ok := v.doc.Versions[id]; !ok && !deployed[id] {
			unknown += n
		}
	}
	return retired, unknown, nil
}

// save removes from the store the files of the dropped versions that no record holds
// any more, then writes the record (a temporary file, synced, renamed). In this order a
// crash between the two leaves a record of a version nothing needs, which the next
// start drops, rather than a file no record names. Only files that were recorded
// versions are removed: whatever else the store holds (an OCI pull not deployed yet)
// is not a version's to drop.
func (v *versions) save(dropped map[string]bool) error {
	kept := v.digests()
	for digest := range dropped {
		if !kept[digest] {
			if err := v.files.Remove(digest); err != nil {
				return err
			}
		}
	}
	b, err := json.MarshalIndent(v.doc, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(v.path, b, 0o644); err != nil {
		return fmt.Errorf("write component versions: %w", err)
	}
	return nil
}

// digests returns the digests the record holds.
func (v *versions) digests() map[string]bool {
	out := map[string]bool{}
	for _, rec := range v.doc.Versions {
		out[rec.Digest] = true
	}
	return out
}

// prepareVersions stores and records the deployed components' versions and returns
// the configurations of the retired versions that the store's unfinished executions
// need (see above), the IDs of the components (deployed or retired) that unfinished
// executions are pinned to, and a function that saves the record and drops what nothing
// needs (called once the components loaded).
func (e *Engine) prepareVersions(ctx context.Context, deployed []ComponentConfig) (retired []ComponentConfig, needed map[string]bool, commit func() error, err error) {
	v, err := openVersions(e.cfg.DataDir)
	if err != nil {
		return nil, nil, nil, err
	}
	before := v.digests()
	ids, err := v.deploy(deployed)
	if err != nil {
		return nil, nil, nil, err
	}
	live := map[string]int{}
	if err := e.store.LiveStates(ctx, func(st *pb.ExecutionState) error {
		if st.ComponentType == pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM || st.ComponentType == pb.ComponentType_COMPONENT_TYPE_WORKFLOW {
			live[st.ComponentId]++
		}
		return nil
	}); err != nil {
		return nil, nil, nil, fmt.Errorf("find the component versions of unfinished executions: %w", err)
	}
	needed = make(map[string]bool, len(live))
	for id := range live {
		needed[id] = true
	}
	retired, unknown, err := v.retire(ids, live)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, r := range retired {
		e.log.Info("serving a retired component version for its unfinished executions", "component", r.Name, "type", r.Type, "file", r.Path)
	}
	if unknown > 0 {
		e.log.Warn("unfinished executions of component versions that were never recorded run on the deployed components exporting their functions", "executions", unknown)
	}
	dropped := map[string]bool{}
	after := v.digests()
	for d := range before {
		if !after[d] {
			dropped[d] = true
		}
	}
	return retired, needed, func() error {
		if err := v.save(dropped); err != nil {
			return err
		}
		for d := range dropped {
			e.log.Info("dropped a component version nothing needs any more", "digest", d)
		}
		e.versions = v
		return nil
	}, nil
}

// versionStarted counts a new execution pinned to component id (a fork), which must not
// be a retired version that has been dropped; versionFinished counts it out again.
func (e *Engine) versionStarted(id string) error {
	v := e.versions
	if c := e.reg.byID[id]; v == nil || c == nil || !c.Retired {
		return nil
	}
	v.liveMu.Lock()
	defer v.liveMu.Unlock()
	if v.live[id] == 0 {
		return &FailedPreconditionError{fmt.Sprintf("component %s is a retired version that no execution needs any more: name a deployed component", id)}
	}
	v.live[id]++
	return nil
}

// versionFinished counts an execution of component id that has finished (onCommit sees
// each finished state once) or has been moved off it (MoveToComponent); when it was the
// last one pinned to a retired version, the
// version is dropped, record and file, off the committing goroutine.
func (e *Engine) versionFinished(id string) {
	v := e.versions
	if c := e.reg.byID[id]; v == nil || c == nil || !c.Retired {
		return // live counts retired versions only: nothing to lock for every finish
	}
	v.liveMu.Lock()
	n, ok := v.live[id]
	if ok && n > 1 {
		v.live[id] = n - 1
	} else if ok {
		delete(v.live, id)
	}
	v.liveMu.Unlock()
	if !ok || n > 1 {
		return
	}
	e.reg.byID[id].dropped.Store(true) // no longer listed
	// Not e.goLoop: it may start while Close waits for the loops. It only touches files,
	// and a save cut short by the process's end is finished by the next start.
	go func() {
		v.saveMu.Lock()
		defer v.saveMu.Unlock()
		rec, ok := v.doc.Versions[id]
		if !ok {
			return
		}
		delete(v.doc.Versions, id)
		if err := v.save(map[string]bool{rec.Digest: true}); err != nil {
			e.log.Warn("drop a retired component version (the next start does)", "component", id, "err", err)
			return
		}
		e.log.Info("dropped a retired component version: its last execution finished", "component", id)
	}()
}
