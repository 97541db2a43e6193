package oci

import (
	"fmt"
	"net"
	"strings"

	"oras.land/oras-go/v2/registry"

	"github.com/obelisk-go/obelisk/wasmstore"
)

// Reference is a parsed OCI reference: REGISTRY/REPOSITORY followed by :TAG, @DIGEST or
// both (the digest then wins, the tag is only a reminder).
type Reference struct {
	text   string
	parsed registry.Reference // Reference: the digest if there is one, else the tag
	tag    string
	digest string
}

// ParseReference parses s. The registry is required (there is no default registry: a
// lock must not depend on one), and so is a tag or a digest; a digest must be sha256,
// the digest of the component store.
func ParseReference(s string) (Reference, error) {
	text := strings.TrimSpace(s)
	if text != s || s == "" {
		return Reference{}, fmt.Errorf("OCI reference %q: want REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST", s)
	}
	registryPart, _, ok := strings.Cut(text, "/")
	if !ok {
		return Reference{}, fmt.Errorf("OCI reference %q: no registry: want REGISTRY/REPOSITORY:TAG, e.g. ghcr.io/org/%s", s, text)
	}
	if !strings.ContainsAny(registryPart, ".:") && registryPart != "localhost" {
		return Reference{}, fmt.Errorf("OCI reference %q: %q is not a registry (a host name with a dot or a port, or localhost): write the registry out, e.g. ghcr.io/%s", s, registryPart, text)
	}
	p, err := registry.ParseReference(text)
	if err != nil {
		return Reference{}, fmt.Errorf("OCI reference %q: %w", s, err)
	}
	r := Reference{text: text, parsed: p}
	name, digest, hasDigest := strings.Cut(text, "@")
	if hasDigest {
		if _, err := wasmstore.ParseDigest(digest); err != nil {
			return Reference{}, fmt.Errorf("OCI reference %q: %w", s, err)
		}
		r.digest = digest
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		r.tag = name[i+1:]
	}
	if r.tag == "" && r.digest == "" {
		return Reference{}, fmt.Errorf("OCI reference %q: give a tag (:v1) or a digest (@sha256:...)", s)
	}
	return r, nil
}

// String returns the reference as it was written.
func (r Reference) String() string { return r.text }

// Registry returns the registry's host[:port].
func (r Reference) Registry() string { return r.parsed.Registry }

// Repository returns the repository within the registry.
func (r Reference) Repository() string { return r.parsed.Repository }

// Tag returns the tag, if the reference has one.
func (r Reference) Tag() string { return r.tag }

// Digest returns the manifest digest the reference pins, if it has one.
func (r Reference) Digest() string { return r.digest }

// isLoopback reports whether host[:port] names this machine: such a registry is reached
// over plain HTTP, as a test or development registry is.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
