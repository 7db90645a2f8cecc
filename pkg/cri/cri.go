package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ErrNotReady is returned (wrapped) by WaitReady when the runtime did not reach the wanted state in time.
var ErrNotReady = errors.New("container runtime not ready")

// PollInterval is how often WaitReady asks the runtime for its status.
const PollInterval = 50 * time.Millisecond

// Client talks to one CRI socket. It is safe for concurrent use; Close it when done.
type Client struct {
	socket string
	conn   *grpc.ClientConn
}

// Dial returns a client for the CRI socket at socket (a path, or a "unix://" address). It does not
// connect yet (ctx is not used for now): the first call does, so Dial succeeds while the runtime is down.
func Dial(ctx context.Context, socket string) (*Client, error) {
	path, err := socketPath(socket)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("dial CRI socket %s: %w", path, err)
	}
	return &Client{socket: path, conn: conn}, nil
}

func socketPath(socket string) (string, error) {
	path := strings.TrimPrefix(socket, "unix://")
	if path == "" {
		return "", errors.New("dial CRI: empty socket path: set the CRI socket")
	}
	return path, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Socket returns the socket path the client talks to.
func (c *Client) Socket() string { return c.socket }

// Runtime returns the raw CRI runtime service client (pod sandboxes, containers).
func (c *Client) Runtime() runtimeapi.RuntimeServiceClient {
	return runtimeapi.NewRuntimeServiceClient(c.conn)
}

// Images returns the raw CRI image service client.
func (c *Client) Images() runtimeapi.ImageServiceClient {
	return runtimeapi.NewImageServiceClient(c.conn)
}

// Handler describes one runtime handler the runtime reports.
type Handler struct {
	// Type is the containerd runtime_type (e.g. io.containerd.runc.v2), or "" when the runtime's
	// verbose status did not include its configuration.
	Type string
}

// Condition is one runtime condition (RuntimeReady, NetworkReady, ...).
type Condition struct {
	Type    string
	Status  bool
	Reason  string
	Message string
}

// Status is what the runtime reported in a verbose CRI Status call.
type Status struct {
	RuntimeReady bool
	NetworkReady bool
	Conditions   []Condition
	// Handlers maps every runtime handler name to what is known about it. The default handler
	// (reported by containerd 2.x under the empty name) is left out.
	Handlers map[string]Handler
}

// HasHandler reports whether the runtime lists the handler name.
func (s *Status) HasHandler(name string) bool {
	_, ok := s.Handlers[name]
	return ok
}

// HandlerNames returns the handler names, sorted.
func (s *Status) HandlerNames() []string {
	names := make([]string, 0, len(s.Handlers))
	for n := range s.Handlers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// String summarises the status for error messages and logs.
func (s *Status) String() string {
	if s == nil {
		return "no status"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "RuntimeReady=%t NetworkReady=%t handlers=%v", s.RuntimeReady, s.NetworkReady, s.HandlerNames())
	for _, c := range s.Conditions {
		if !c.Status && (c.Reason != "" || c.Message != "") {
			fmt.Fprintf(&b, "; %s: %s %s", c.Type, c.Reason, c.Message)
		}
	}
	return b.String()
}

// Status asks the runtime for its verbose status and parses conditions and runtime handlers.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.Runtime().Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return nil, fmt.Errorf("CRI status on %s: %w", c.socket, err)
	}
	st, err := parseStatus(resp)
	if err != nil {
		return nil, fmt.Errorf("CRI status on %s: %w", c.socket, err)
	}
	return st, nil
}

// criConfig is the part of containerd's verbose info["config"] JSON that names the runtimes.
type criConfig struct {
	Containerd struct {
		Runtimes map[string]struct {
			RuntimeType string `json:"runtimeType"`
		} `json:"runtimes"`
	} `json:"containerd"`
}

func parseStatus(resp *runtimeapi.StatusResponse) (*Status, error) {
	st := &Status{Handlers: map[string]Handler{}}
	for _, c := range resp.GetStatus().GetConditions() {
		st.Conditions = append(st.Conditions, Condition{Type: c.GetType(), Status: c.GetStatus(), Reason: c.GetReason(), Message: c.GetMessage()})
		switch c.GetType() {
		case runtimeapi.RuntimeReady:
			st.RuntimeReady = c.GetStatus()
		case runtimeapi.NetworkReady:
			st.NetworkReady = c.GetStatus()
		}
	}
	for _, h := range resp.GetRuntimeHandlers() {
		if h.GetName() != "" {
			st.Handlers[h.GetName()] = Handler{}
		}
	}
	if raw, ok := resp.GetInfo()["config"]; ok {
		var cfg criConfig
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			return nil, fmt.Errorf("parse verbose info[\"config\"]: %w", err)
		}
		for name, rt := range cfg.Containerd.Runtimes {
			st.Handlers[name] = Handler{Type: rt.RuntimeType}
		}
	}
	return st, nil
}

// WaitReady polls the CRI socket until the runtime reports RuntimeReady and the handler is listed
// (present) or not listed (!present); handler "" only waits for RuntimeReady. The socket may be absent
// or refusing connections meanwhile (containerd restarting). ctx bounds the wait: on expiry the error
// wraps ErrNotReady and says what was last seen. The last status read is returned either way.
func WaitReady(ctx context.Context, socket, handler string, present bool) (*Status, error) {
	if _, err := socketPath(socket); err != nil {
		return nil, err
	}
	var (
		last    *Status
		lastErr error
	)
	err := wait.PollUntilContextCancel(ctx, PollInterval, true, func(ctx context.Context) (bool, error) {
		// A fresh connection per attempt: a long-lived one backs off for seconds after the runtime
		// went away, which would delay noticing that it is back.
		c, err := Dial(ctx, socket)
		if err != nil {
			return false, err
		}
		defer c.Close()
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := c.Status(callCtx)
		if err != nil {
			lastErr = err
			return false, nil
		}
		last, lastErr = st, nil
		return st.RuntimeReady && (handler == "" || st.HasHandler(handler) == present), nil
	})
	if err == nil {
		return last, nil
	}
	want := "RuntimeReady"
	if handler != "" {
		verb := "listed"
		if !present {
			verb = "absent"
		}
		want += fmt.Sprintf(" and handler %q %s", handler, verb)
	}
	seen := "last status: " + last.String()
	if lastErr != nil {
		seen = fmt.Sprintf("last error: %v", lastErr)
		if last != nil {
			seen += "; " + "last status: " + last.String()
		}
	}
	return last, fmt.Errorf("%w: CRI socket %s: waited for %s: %v; %s", ErrNotReady, socket, want, err, seen)
}
