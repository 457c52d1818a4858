package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are a test CA and the certificates and keys signed by it, as PEM files.
type TLSFiles struct {
	CA                    string
	ServerCert, ServerKey string // for 127.0.0.1, localhost and server.dc1.consul
	ClientCert, ClientKey string
	Other                 string // a CA that signed nothing here: a server it vouches for is not trusted
}

// MakeTLS makes a CA, a server certificate and a client certificate in a temporary directory.
func MakeTLS(t testing.TB) *TLSFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name, kind string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	tmpl := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	}
	caKey := newKey()
	ca := tmpl("ecs-registrator test CA")
	ca.IsCA, ca.BasicConstraintsValid, ca.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	f := &TLSFiles{CA: write("ca.pem", "CERTIFICATE", caDER)}
	leaf := func(cn string, usage x509.ExtKeyUsage, name string) (string, string) {
		k := newKey()
		c := tmpl(cn)
		c.KeyUsage, c.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{usage}
		if usage == x509.ExtKeyUsageServerAuth {
			c.DNSNames, c.IPAddresses = []string{"localhost", "server.dc1.consul"}, []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, c, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	f.ServerCert, f.ServerKey = leaf("server.dc1.consul", x509.ExtKeyUsageServerAuth, "server")
	f.ClientCert, f.ClientKey = leaf("ecs-registrator", x509.ExtKeyUsageClientAuth, "client")
	otherKey := newKey()
	other := tmpl("another CA")
	other.IsCA, other.BasicConstraintsValid, other.KeyUsage = true, true, x509.KeyUsageCertSign
	otherDER, err := x509.CreateCertificate(rand.Reader, other, other, &otherKey.PublicKey, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	f.Other = write("other-ca.pem", "CERTIFICATE", otherDER)
	return f
}
