// Command hello is the cluster test's container, built statically and packaged into an image by the
// test. Without arguments it prints a greeting, asks the apiserver for its version through the
// kubernetes.default service (the service DNAT, the serving certificate's service IP and the pod's
// ServiceAccount token and root CA all take part) and prints the answer. With `restart CONFIG` it
// does what the node installer does in its privileged hostPID pod with the host's root at /host: it
// prints the sha256 of /host/CONFIG, finds the containerd process whose command line names CONFIG
// and sends it SIGTERM. Either way it then waits for SIGTERM.
package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	if len(os.Args) == 3 && os.Args[1] == "restart" {
		if err := restart(os.Args[2]); err != nil {
			fmt.Printf("restart error: %v\n", err)
		}
	} else {
		host, _ := os.Hostname()
		fmt.Printf("hello from %s\n", host)
		if v, err := apiserverVersion(); err != nil {
			fmt.Printf("apiserver error: %v\n", err)
		} else {
			fmt.Printf("apiserver version %s\n", v)
		}
	}
	<-sigs
	fmt.Println("goodbye")
}

// restart prints the hash of the host's containerd config and signals the containerd running it.
func restart(config string) error {
	b, err := os.ReadFile(filepath.Join("/host", config))
	if err != nil {
		return err
	}
	fmt.Printf("config sha256 %x\n", sha256.Sum256(b))
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		return err
	}
	var pids []int
	for _, f := range cmdlines {
		args, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(args, []byte("\x00"+config+"\x00")) {
			continue
		}
		if comm, err := os.ReadFile(filepath.Join(filepath.Dir(f), "comm")); err == nil && string(bytes.TrimSpace(comm)) == "containerd" {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		return fmt.Errorf("%d containerd processes name %s: %v", len(pids), config, pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGTERM); err != nil {
		return err
	}
	fmt.Printf("signalled containerd PID %d\n", pids[0])
	return nil
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
