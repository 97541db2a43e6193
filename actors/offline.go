package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// OpenOffline opens the data directory of a stopped server, cfg.DataDir, as an engine
// that can only check and replay its executions (Verify, Replay): `obelisk verify`.
// Nothing in the data directory is written: the event store is opened read-only
// (events.Options.ReadOnly, which fails with events.ErrLocked while a server runs on
// it), and the components are the versions the server recorded (VersionsFile), each
// loaded from its file in the component store (package wasmstore), so that every
// execution replays against the exact code it is pinned to, whatever cfg.Components
// says (they are ignored). Only the compilation cache (cfg.CacheDir, by default in the
// data directory) may gain the modules it compiles, as the server's next start would.
//
// The engine starts no executor, timer or service and reaches nothing outside the
// process. It compiles only the modules of the workflow versions its executions are
// pinned to (a replay runs no other code); the other versions are loaded for their
// interfaces, and cannot be a replay's target. A recorded version whose file is missing or corrupt is not an error here:
// the replays of the executions pinned to it fail, naming it (replayComponent), and the
// other executions are still replayed. The runtime's settings (snapshots, instance
// reuse) are cfg's; each version's own settings (memory limit) are those it recorded.
func OpenOffline(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.DataDir, "wasm-cache")
	}
	if cfg.MaxParamsBytes <= 0 {
		cfg.MaxParamsBytes = DefaultMaxParamsBytes
	}
	doc, err := readVersions(filepath.Join(cfg.DataDir, VersionsFile))
	if err != nil {
		return nil, err
	}
	store, err := events.Open(StoreDir(cfg.DataDir), events.Options{ReadOnly: true, Logger: cfg.Logger, FS: cfg.StoreFS,
		CacheSize: cfg.StoreCacheSize, MemTableSize: cfg.StoreMemTableSize})
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, store: store, executor: events.NewExecutorID(time.Now()), failed: make(chan struct{}),
		instantiating: make(chan struct{}, runtime.GOMAXPROCS(0))}
	var comp compiler
	if e.rt = cfg.Modules.runtime(); e.rt != nil {
		comp = cfg.Modules
	} else {
		if e.rt, err = wasmhost.NewRuntime(ctx, runtimeConfig(cfg)); err != nil {
			store.Close()
			return nil, fmt.Errorf("start wasm runtime: %w", err)
		}
		e.ownRuntime, comp = true, runtimeCompiler{e.rt}
	}
	// The versions the workflow executions are pinned to, true if an unfinished one is:
	// only their modules are compiled.
	pinned := map[string]bool{}
	if err := store.AllStates(ctx, func(st *pb.ExecutionState) error {
		if st.ComponentType == pb.ComponentType_COMPONENT_TYPE_WORKFLOW {
			pinned[st.ComponentId] = pinned[st.ComponentId] || st.Status != pb.Status_STATUS_FINISHED
		}
		return nil
	}); err != nil {
		e.Close(ctx)
		return nil, fmt.Errorf("find the component versions of the workflow executions: %w", err)
	}
	if e.reg, e.unavailable, err = loadRecorded(ctx, comp, cfg.DataDir, doc, pinned); err != nil {
		e.Close(ctx)
		return nil, err
	}
	return e, nil
}

// loadRecorded loads the component versions that doc records in dataDir's component
// store, as deployed or retired as the server last had them, and the built-in KV
// component; unavailable names, by component ID, the versions that cannot be loaded,
// and why. Only the modules of the workflow versions that pinned names are compiled
// (and of every deployed workflow when an unfinished execution is pinned to one that is
// not recorded: it replays on the deployed exporter of its function, as it would run,
// registry.functionOf; a finished one is not replayable, Engine.verifyReplay).
func loadRecorded(ctx context.Context, comp compiler, dataDir string, doc versionsDoc, pinned map[string]bool) (reg *registry, unavailable map[string]error, err error) {
	files := wasmstore.OpenReadOnly(filepath.Join(dataDir, wasmstore.DirName))
	ids := make([]string, 0, len(doc.Versions))
	for id := range doc.Versions {
		ids = append(ids, id)
	}
	// In the order the server deployed them (records without one: by ID), for the
	// registry to pick the newest exporter of a function as the server did.
	sort.Slice(ids, func(i, j int) bool {
		a, b := doc.Versions[ids[i]].Order, doc.Versions[ids[j]].Order
		return a < b || a == b && ids[i] < ids[j]
	})
	unavailable = map[string]error{}
	// Only the pinned workflows' modules are compiled: a replay runs no other code (a
	// child's response is its recorded one). The others are loaded for their
	// interfaces, which route the workflows' imports as the server did.
	only := workflowsOnly{comp: comp, digests: map[string]bool{}}
	unrecorded := false
	for id, unfinished := range pinned {
		if _, ok := doc.Versions[id]; !ok && unfinished {
			unrecorded = true
		}
	}
	var cfgs []ComponentConfig
	var cfgIDs []string
	var deployed []bool
	for _, id := range ids {
		rec := doc.Versions[id]
		cfg, err := rec.load(files)
		if errors.Is(err, wasmstore.ErrNotFound) {
			unavailable[id] = fmt.Errorf("component version %s is not in the component store %s (deleted, or the data directory was copied without it): "+
				"copy the file %s from the server's data directory or a backup (its name is the digest), or deploy that version again",
				id, files.Dir(), filepath.Base(cfg.Path))
			continue
		}
		if err != nil {
			unavailable[id] = fmt.Errorf("component version %s: %w: copy it again from the server's data directory or a backup", id, err)
			continue
		}
		cfgs, cfgIDs, deployed = append(cfgs, cfg), append(cfgIDs, id), append(deployed, rec.Deployed)
		if _, ok := pinned[id]; rec.Type == Workflow && (ok || unrecorded && rec.Deployed) {
			only.digests[rec.Digest] = true
		}
	}
	cs, errs := compileConfigs(ctx, only, cfgs, false)
	kv, err := loadComponent(ctx, comp, kvComponentConfig())
	if err != nil {
		return nil, nil, err
	}
	dep, ret := []*Component{kv}, []*Component(nil)
	for i, c := range cs {
		switch {
		case errs[i] != nil:
			unavailable[cfgIDs[i]] = fmt.Errorf("component version %s cannot be loaded: %w", cfgIDs[i], errs[i])
		case deployed[i]:
			dep = append(dep, c)
		default:
			ret = append(ret, c)
		}
	}
	reg, err = buildRegistry(dep, ret, false)
	if err != nil {
		return nil, nil, fmt.Errorf("the component versions recorded in %s: %w", filepath.Join(dataDir, VersionsFile), err)
	}
	return reg, unavailable, nil
}

// workflowsOnly is an offline engine's compiler: it compiles the modules of digests (the
// pinned workflows') with comp, and no other (their Component has no module: it never
// runs; replayComponent refuses it as a target).
type workflowsOnly struct {
	comp    compiler
	digests map[string]bool
}

func (w workflowsOnly) compile(ctx context.Context, name, digest string, wasm []byte, limitPages uint32) (*wasmhost.Module, error) {
	if !w.digests[digest] {
		return nil, nil
	}
	return w.comp.compile(ctx, name, digest, wasm, limitPages)
}
