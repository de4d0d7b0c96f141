package smart_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/connectors/smart"
)

func TestLoadKey(t *testing.T) {
	rk, ek := keys(t)
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	cases := []struct {
		name string
		file []byte
		want crypto.Signer // nil: an error
		err  string
	}{
		{"RSA PKCS#8", pkcs8(rk), rk, ""},
		{"EC P-384 PKCS#8", pkcs8(ek), ek, ""},
		{"PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), nil, "openssl pkcs8 -topk8"},
		{"EC P-256", pkcs8(p256), nil, "P-384"},
		{"not PEM", []byte("-----"), nil, "no PEM block"},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), nil, "parse PKCS#8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "client.key")
			if err := os.WriteFile(path, c.file, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := smart.LoadKey(path)
			if c.want == nil {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want one naming %s and saying %q", err, path, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if eq, ok := got.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !eq.Equal(c.want) {
				t.Errorf("loaded key differs from the one written")
			}
		})
	}
	if _, err := smart.LoadKey(filepath.Join(t.TempDir(), "missing.key")); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing file: error %v, want one naming it", err)
	}
}
