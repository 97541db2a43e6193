package config

import (
	"net"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/hostguard"
)

// TestAllowedHosts reads api.allowed_hosts and webui.allowed_hosts from the file and
// the environment, and refuses a bad entry naming its key.
func TestAllowedHosts(t *testing.T) {
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5005}
	allows := func(a hostguard.Allowed, host string) bool { return hostguard.New(loopback, a).AllowHost(host) }

	s, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !allows(s.APIAllowedHosts, "localhost:5005") || allows(s.APIAllowedHosts, "evil.example:5005") || allows(s.WebUIAllowedHosts, "evil.example:8080") {
		t.Errorf("default: a loopback listener must answer to loopback names only")
	}

	s, err = Load(write(t, `
[api]
allowed_hosts = ["obelisk.example"]
[webui]
allowed_hosts = ["*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if !allows(s.APIAllowedHosts, "obelisk.example:5005") || allows(s.APIAllowedHosts, "evil.example:5005") || !allows(s.WebUIAllowedHosts, "evil.example:8080") {
		t.Errorf("file: api.allowed_hosts = [obelisk.example], webui.allowed_hosts = [*] not applied")
	}

	t.Setenv("OBELISK_WEBUI_ALLOWED_HOSTS", "ui.example,ui2.example")
	s, err = Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !allows(s.WebUIAllowedHosts, "ui2.example:8080") || allows(s.WebUIAllowedHosts, "evil.example:8080") {
		t.Errorf("environment: OBELISK_WEBUI_ALLOWED_HOSTS not applied")
	}

	_, err = Load(write(t, `
[api]
allowed_hosts = ["obelisk.example:5005"]
`))
	if err == nil || !strings.Contains(err.Error(), "api.allowed_hosts") || !strings.Contains(err.Error(), "obelisk.example:5005") {
		t.Errorf("a host with a port: error %v, want one naming api.allowed_hosts and the entry", err)
	}
}
