package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/config"
)

type certPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func newCert(t *testing.T, cn string, parent *certPair, isCA bool, usage x509.ExtKeyUsage) *certPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certPair{cert: c, key: key, der: der}
}

func (c *certPair) write(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	kb, err := x509.MarshalECPrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func (c *certPair) tlsCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.der}, PrivateKey: c.key}
}

// With tls.client_ca_file set, only clients with a certificate signed by
// that CA get through the handshake.
func TestTLSConfigMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCert(t, "test-ca", nil, true, 0)
	srvCert, srvKey := newCert(t, "remediator", ca, false, x509.ExtKeyUsageServerAuth).write(t, dir, "server")
	caFile, _ := ca.write(t, dir, "ca")
	client := newCert(t, "alertmanager", ca, false, x509.ExtKeyUsageClientAuth)
	stranger := newCert(t, "stranger", newCert(t, "other-ca", nil, true, 0), false, x509.ExtKeyUsageClientAuth)

	tc, err := tlsConfig(config.TLSConfig{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	// Serve exactly as `serve` does: a TLS listener with this config.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = hs.Serve(tls.NewListener(ln, tc)) }()
	defer hs.Close()
	url := "https://" + ln.Addr().String()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	get := func(certs ...tls.Certificate) (string, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		resp, err := c.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		return string(b[:n]), nil
	}
	if got, err := get(client.tlsCert()); err != nil || got != "alertmanager" {
		t.Fatalf("client with a trusted certificate: %q %v", got, err)
	}
	if _, err := get(); err == nil {
		t.Fatal("client without a certificate got through")
	}
	if _, err := get(stranger.tlsCert()); err == nil {
		t.Fatal("client with an untrusted certificate got through")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newCert(t, "test-ca", nil, true, 0)
	srvCert, srvKey := newCert(t, "remediator", ca, false, x509.ExtKeyUsageServerAuth).write(t, dir, "server")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  config.TLSConfig
		want string
	}{
		{"missing cert", config.TLSConfig{CertFile: filepath.Join(dir, "nope"), KeyFile: srvKey}, "tls:"},
		{"key mismatch", config.TLSConfig{CertFile: srvCert, KeyFile: notPEM}, "tls:"},
		{"ca not pem", config.TLSConfig{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: notPEM}, "no PEM certificates"},
		{"ca missing", config.TLSConfig{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: filepath.Join(dir, "nope")}, "tls.client_ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsConfig(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	if tc, err := tlsConfig(config.TLSConfig{}); tc != nil || err != nil {
		t.Fatalf("no TLS configured: %v %v", tc, err)
	}
}
