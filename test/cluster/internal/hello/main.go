// Command hello is the cluster test's container: it prints a greeting, then asks the apiserver for
// its version through the kubernetes.default service (the service DNAT, the serving certificate's
// service IP and the pod's ServiceAccount token and root CA all take part) and prints the answer,
// then waits for SIGTERM. It is built statically and packaged into an image by the test.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	host, _ := os.Hostname()
	fmt.Printf("hello from %s\n", host)
	if v, err := apiserverVersion(); err != nil {
		fmt.Printf("apiserver error: %v\n", err)
	} else {
		fmt.Printf("apiserver version %s\n", v)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	fmt.Println("goodbye")
}

// apiserverVersion GETs /version from the in-cluster apiserver address, retrying for a while.
func apiserverVersion() (string, error) {
	addr := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return "", err
	}
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return "", fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/version", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+string(token))
	var last error
	for range 10 {
		resp, err := client.Do(req)
		if err == nil {
			var v struct {
				GitVersion string `json:"gitVersion"`
			}
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return v.GitVersion, nil
			}
			if err == nil {
				err = fmt.Errorf("GET https://%s/version: %s", addr, resp.Status)
			}
		}
		last = err
		time.Sleep(time.Second)
	}
	return "", last
}
