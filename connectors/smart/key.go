// This file reads the client's private key from configuration: a PEM
// PKCS#8 file, the form openssl, step and cloud key stores export.

package smart

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// LoadKey reads a PEM "PRIVATE KEY" (PKCS#8, unencrypted) file for
// Config.Key and checks it can sign SMART assertions (RS384 or ES384).
// Errors name the file, never the key's bytes.
func LoadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("smart: read private key: %w", err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParseKey is LoadKey on the file's contents.
func ParseKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("smart: no PEM block in the private key file")
	}
	if block.Type != "PRIVATE KEY" {
		// PKCS#1 "RSA PRIVATE KEY", SEC 1 "EC PRIVATE KEY" and encrypted
		// keys are one openssl command away from PKCS#8.
		return nil, fmt.Errorf("smart: PEM block is %q, want \"PRIVATE KEY\" (PKCS#8, unencrypted): convert with openssl pkcs8 -topk8 -nocrypt", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("smart: parse PKCS#8 private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("smart: key type %T cannot sign", k)
	}
	if _, err := signingMethod(s); err != nil {
		return nil, err
	}
	return s, nil
}
