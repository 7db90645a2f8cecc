package v1alpha1

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	r := Result{Operation: OpInstall, Shim: "spin", Handler: "spin", Success: true, Changed: true,
		ConfigChanged: true, Restarted: true, SpecHash: "abc", Platform: "linux/arm64", ConfigVersion: 3,
		BinarySHA256: strings.Repeat("a", 64), DurationMS: 1234}
	r.AddStep("fetch", 15*time.Millisecond)
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\n") {
		t.Errorf("document is not one line: %s", b)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Steps[0] != (Step{Name: "fetch", MS: 15}) || got.BinarySHA256 != r.BinarySHA256 || !got.Restarted {
		t.Errorf("round trip lost data: %+v", got)
	}
	// The field names the manager reads are part of the contract.
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"operation", "success", "changed", "restarted", "specHash", "platform", "durationMs", "configChanged", "binaryChanged"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from %s", k, b)
		}
	}
}

func TestEncodeFitsTerminationMessage(t *testing.T) {
	t.Parallel()
	tests := map[string]Result{
		"long error": {Operation: OpInstall, Error: strings.Repeat("é", 5000)},
		"many steps": {Operation: OpInstall, Error: "x", Steps: make([]Step, 400)},
		"everything long": {Operation: OpInstall, Error: strings.Repeat("e", 9000), Steps: make([]Step, 400),
			ConfigPath: strings.Repeat("c", 3000), BinaryPath: strings.Repeat("b", 3000), Distro: strings.Repeat("d", 3000)},
	}
	for name, r := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r.Fail(ReasonFetchFailed, nil)
			b, err := r.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxBytes {
				t.Fatalf("encoded %d bytes, want <= %d", len(b), MaxBytes)
			}
			if !utf8.Valid(b) {
				t.Fatal("truncation produced invalid UTF-8")
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Reason != ReasonFetchFailed || got.Operation != OpInstall {
				t.Errorf("reason/operation lost: %+v", got)
			}
			if got.Error == "" {
				t.Error("error text dropped entirely")
			}
		})
	}
}

func TestFailKeepsError(t *testing.T) {
	t.Parallel()
	r := Result{Success: true}
	r.Fail(ReasonVerifyFailed, errors.New("handler spin not in CRI status"))
	if r.Success || r.Reason != ReasonVerifyFailed || r.Error != "handler spin not in CRI status" {
		t.Errorf("Fail: %+v", r)
	}
}

// TestExitCode decides, for every reason, whether the Job retries it. A new reason must be added here,
// which forces the decision.
func TestExitCode(t *testing.T) {
	t.Parallel()
	want := map[string]int{
		ReasonInvalidArguments:         ExitUsage,
		ReasonDetectFailed:             ExitPermanent,
		ReasonUnsupportedPlatform:      ExitPermanent,
		ReasonUnsupportedHost:          ExitPermanent,
		ReasonConfigUnparseable:        ExitPermanent,
		ReasonConfigUnknownVersion:     ExitPermanent,
		ReasonConfigConflict:           ExitPermanent,
		ReasonConfigUnsafe:             ExitPermanent,
		ReasonShimNotRunnable:          ExitPermanent,
		ReasonContainerdVersionUnknown: ExitPermanent,
		ReasonHandlerConflict:          ExitPermanent,
		ReasonNodeBusy:                 ExitTransient,
		ReasonFetchFailed:              ExitTransient,
		ReasonBinaryFailed:             ExitTransient,
		ReasonConfigWriteFailed:        ExitTransient,
		ReasonStateFailed:              ExitTransient,
		ReasonRestartFailed:            ExitTransient,
		ReasonVerifyFailed:             ExitTransient,
		ReasonRollbackFailed:           ExitTransient,
		ReasonTimeout:                  ExitTransient,
		ReasonInternal:                 ExitTransient,
		"SomethingNew":                 ExitTransient, // unknown reasons are retried
	}
	for reason, code := range want {
		if got := (Result{Reason: reason}).ExitCode(); got != code {
			t.Errorf("reason %s: exit code %d, want %d", reason, got, code)
		}
	}
	if got := (Result{Success: true, Reason: ReasonConfigConflict}).ExitCode(); got != ExitOK {
		t.Errorf("a successful result exits %d, want 0", got)
	}
	for reason := range permanent {
		if _, ok := want[reason]; !ok {
			t.Errorf("permanent reason %s is not in this table", reason)
		}
	}
	if codes := map[int]bool{ExitOK: true, ExitTransient: true, ExitUsage: true, ExitPermanent: true}; len(codes) != 4 {
		t.Error("exit codes are not distinct")
	}
}
