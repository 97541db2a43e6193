package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// object is a JSON object that keeps its keys in insertion order, so that the
// generated files read naturally ("$schema", "title", "description", "type",
// "properties" in field order, ...) and are byte-for-byte reproducible.
type object struct {
	keys []string
	vals map[string]any
}

// obj builds an object from alternating keys and values.
func obj(kv ...any) *object {
	o := &object{vals: map[string]any{}}
	for i := 0; i+1 < len(kv); i += 2 {
		o.set(kv[i].(string), kv[i+1])
	}
	return o
}

// set sets key k, appending it if it is new.
func (o *object) set(k string, v any) *object {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
	return o
}

func (o *object) get(k string) any { return o.vals[k] }

func (o *object) delete(k string) {
	if _, ok := o.vals[k]; !ok {
		return
	}
	delete(o.vals, k)
	for i, x := range o.keys {
		if x == k {
			o.keys = append(o.keys[:i], o.keys[i+1:]...)
			return
		}
	}
}

// clone copies o deeply (objects and arrays; other values are immutable).
func (o *object) clone() *object {
	c := obj()
	for _, k := range o.keys {
		c.set(k, cloneValue(o.vals[k]))
	}
	return c
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case *object:
		return v.clone()
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
}

// MarshalJSON writes the members in order, without HTML escaping.
func (o *object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := marshal(o.vals[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// leading are the keywords put first in every schema object, in this order.
var leading = []string{"$schema", "title", "description", "type"}

// normalize puts the leading keywords of every schema object first. Property names
// are not keywords: the members of "properties", "$defs" and the like keep their order.
func normalize(v any) {
	switch v := v.(type) {
	case *object:
		var keys []string
		for _, k := range leading {
			if _, ok := v.vals[k]; ok {
				keys = append(keys, k)
			}
		}
		for _, k := range v.keys {
			if !slices.Contains(leading, k) {
				keys = append(keys, k)
			}
		}
		v.keys = keys
		for _, k := range v.keys {
			if k == "properties" || k == "$defs" || k == "dependentSchemas" {
				if m, ok := v.vals[k].(*object); ok {
					for _, name := range m.keys {
						normalize(m.vals[name])
					}
				}
				continue
			}
			normalize(v.vals[k])
		}
	case []any:
		for _, e := range v {
			normalize(e)
		}
	}
}

// encodeFile renders a schema document as an indented JSON file.
func encodeFile(v any) ([]byte, error) {
	normalize(v)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// decodeOrdered decodes JSON text into objects (in order), []any, json.Number, string,
// bool and nil.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return decodeOrderedValue(dec)
}

func decodeOrderedValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, err := decodeOrderedValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token()
		return arr, err
	case json.Delim('{'):
		o := obj()
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrderedValue(dec)
			if err != nil {
				return nil, err
			}
			o.set(kt.(string), v)
		}
		_, err := dec.Token()
		return o, err
	}
	return tok, nil
}
