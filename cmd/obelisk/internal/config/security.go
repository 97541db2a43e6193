package config

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/obelisk-go/obelisk/auth"
)

// TLSFiles are the tls_cert_file and tls_key_file keys of [api], [webui] and each
// [[http_server]]: PEM files of a certificate (chain) and its private key. Both or none.
type TLSFiles struct {
	CertFile string `mapstructure:"tls_cert_file"`
	KeyFile  string `mapstructure:"tls_key_file"`
}

// load reads the pair (paths relative to the config's folder through rel) into a server
// tls.Config; nil when neither key is set. section names the keys in errors.
func (f TLSFiles) load(section string, rel func(string) string) (*tls.Config, error) {
	cert, key := strings.TrimSpace(f.CertFile), strings.TrimSpace(f.KeyFile)
	switch {
	case cert == "" && key == "":
		return nil, nil
	case cert == "":
		return nil, fmt.Errorf("%s.tls_key_file is set without %s.tls_cert_file: give both", section, section)
	case key == "":
		return nil, fmt.Errorf("%s.tls_cert_file is set without %s.tls_key_file: give both", section, section)
	}
	pair, err := tls.LoadX509KeyPair(rel(cert), rel(key))
	if err != nil {
		return nil, fmt.Errorf("%s.tls_cert_file %s, %s.tls_key_file %s: %w", section, rel(cert), section, rel(key), err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// resolveSecurity reads [api] auth_tokens_file and metrics_auth, and the TLS pairs of
// [api] and [webui], into s.
func resolveSecurity(f *File, s *Server, rel func(string) string, path string) error {
	var err error
	if p := strings.TrimSpace(f.API.AuthTokensFile); p != "" {
		if s.APITokens, err = auth.LoadTokens(rel(p)); err != nil {
			return fmt.Errorf("config %s: api.auth_tokens_file: %w", displayPath(path), err)
		}
	}
	if f.API.MetricsAuth && s.APITokens == nil {
		return fmt.Errorf("config %s: api.metrics_auth = true needs api.auth_tokens_file (the tokens /metrics would accept)", displayPath(path))
	}
	s.MetricsAuth = f.API.MetricsAuth
	if s.APITLS, err = f.API.TLSFiles.load("api", rel); err != nil {
		return fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	if s.WebUITLS, err = f.WebUI.TLSFiles.load("webui", rel); err != nil {
		return fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	return nil
}
