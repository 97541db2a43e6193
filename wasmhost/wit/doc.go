// Package wit owns everything the host knows about a component's WIT interface:
//
//   - a parser for the WIT text format ([Parse]) that resolves every package,
//     interface, world, type and function of a component's WIT folder into a
//     [Resolve];
//   - the JSON value mapping: type-checking parameters and return values given as
//     JSON against WIT types ([CheckValue], [CheckParams]) and classifying errors
//     as permanent ([IsPermanentError]);
//   - the `obelisk-wit` custom section that carries the WIT folder inside a core
//     WebAssembly module ([LoadDir], [EncodeSection], [DecodeSection],
//     [EmbedInWasm], [ExtractFromWasm]);
//   - the extension packages a workflow imports to submit, await, schedule and
//     stub executions of another component's functions ([GenerateExtensions],
//     the host's own obelisk:types package [TypesPackage]), and the mapping of
//     their functions back to the functions they stand for ([SplitExtension]).
//
// The guest ABI (docs/abi.md) defines the section and the value mapping. Values
// cross every boundary as JSON: records are objects with snake_case keys, variant
// cases are "case" or {"case": value}, enums are strings, flags are arrays of
// strings, option<T> is null or the value, result is {"ok": v} or {"err": v},
// lists and tuples are arrays, and 64-bit integers are exact JSON integers.
//
// The package holds no mutable package-level state. [Parse] never modifies a
// [Resolve] after returning it, so one Resolve may be read concurrently.
package wit
