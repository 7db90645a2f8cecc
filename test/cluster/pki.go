package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// certValidity is how long the generated certificates are valid: a local cluster lives for hours.
const certValidity = 30 * 24 * time.Hour

// identity is one client or serving certificate to issue.
type identity struct {
	file  string // base name of the .crt and .key files
	cn    string
	orgs  []string
	ips   []net.IP
	dns   []string
	usage []x509.ExtKeyUsage
}

// writePKI generates, in dir, the CA, the apiserver's serving certificate (SANs: 127.0.0.1, the node
// IP, the first service IP and the kubernetes.default names), the kubelet's serving certificate,
// client certificates for the admin, the controller manager and the apiserver's calls to the kubelet
// (all system:masters), the kubelet (system:node:NODE in system:nodes) and the scheduler, and
// the service-account key pair. Keys are ECDSA P-256: quick to make and accepted everywhere.
func writePKI(dir, node string, n Network) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create PKI directory: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "wasmkube-localcluster-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("parse CA certificate: %w", err)
	}
	if err := writeKeyPair(dir, "ca", caDER, caKey); err != nil {
		return err
	}
	nodeIP, serviceIP := net.ParseIP(n.NodeIP), net.ParseIP(n.ServiceIP)
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	serving := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, id := range []identity{
		{file: "apiserver", cn: "kube-apiserver", usage: serving,
			ips: []net.IP{net.IPv4(127, 0, 0, 1), nodeIP, serviceIP},
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{file: "kubelet-serving", cn: node, usage: serving, ips: []net.IP{net.IPv4(127, 0, 0, 1), nodeIP}, dns: []string{node, "localhost"}},
		{file: "admin", cn: "wasmkube-admin", orgs: []string{"system:masters"}, usage: client},
		{file: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, usage: client},
		{file: "kubelet", cn: "system:node:" + node, orgs: []string{"system:nodes"}, usage: client},
		// With --use-service-account-credentials=false every controller acts as the controller manager,
		// whose own ClusterRole lacks most controllers' rights (creating a Job's pods, ...).
		{file: "controller-manager", cn: "system:kube-controller-manager", orgs: []string{"system:masters"}, usage: client},
		{file: "scheduler", cn: "system:kube-scheduler", usage: client},
	} {
		if err := issue(dir, id, ca, caKey); err != nil {
			return err
		}
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate service-account key: %w", err)
	}
	saKeyDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		return fmt.Errorf("encode service-account key: %w", err)
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return fmt.Errorf("encode service-account public key: %w", err)
	}
	if err := writePEM(filepath.Join(dir, "sa.key"), "PRIVATE KEY", saKeyDER, 0o600); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "sa.pub"), "PUBLIC KEY", saPubDER, 0o644)
}

// issue creates id's key and certificate signed by the CA, as dir/<file>.crt and .key.
func issue(dir string, id identity, ca *x509.Certificate, caKey crypto.Signer) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate %s key: %w", id.file, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: id.cn, Organization: id.orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  id.usage,
		IPAddresses:  id.ips,
		DNSNames:     id.dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("create %s certificate: %w", id.file, err)
	}
	return writeKeyPair(dir, id.file, der, key)
}

func writeKeyPair(dir, name string, certDER []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode %s key: %w", name, err)
	}
	if err := writePEM(filepath.Join(dir, name+".key"), "EC PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, name+".crt"), "CERTIFICATE", certDER, 0o644)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // cannot happen on Linux
	}
	return n
}

// writeKubeconfig writes a kubeconfig for the client certificate pkiDir/<user>.crt talking to server.
func writeKubeconfig(path, server, pkiDir, user string) error {
	ca, err := os.ReadFile(filepath.Join(pkiDir, "ca.crt"))
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	cert, err := os.ReadFile(filepath.Join(pkiDir, user+".crt"))
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	key, err := os.ReadFile(filepath.Join(pkiDir, user+".key"))
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	const name = "wasmkube-local"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}
