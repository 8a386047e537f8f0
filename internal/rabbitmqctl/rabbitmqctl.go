package rabbitmqctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultTimeout bounds one rabbitmqctl call when Runner.Timeout is 0.
const DefaultTimeout = 5 * time.Second

// maxErrLen bounds how much of rabbitmqctl's standard error an error keeps.
const maxErrLen = 400

// Runner runs rabbitmqctl against one node. The zero Runner runs the
// rabbitmqctl found on PATH against the default node, within 5s.
type Runner struct {
	// Node is the Erlang node name given with -n ("rabbit@host"). ""
	// means rabbitmqctl's default, rabbit@<this host>.
	Node string
	// Path is the rabbitmqctl program. "" means "rabbitmqctl" on PATH.
	Path string
	// Timeout bounds each call. 0 means DefaultTimeout.
	Timeout time.Duration
}

// Run runs rabbitmqctl -q [-n Node] args... and returns its standard
// output. A failure carries rabbitmqctl's standard error, trimmed.
func (r Runner) Run(ctx context.Context, args ...string) ([]byte, error) {
	path := r.Path
	if path == "" {
		path = "rabbitmqctl"
	}
	path, err := exec.LookPath(path)
	if err != nil {
		return nil, fmt.Errorf("rabbitmqctl: %w", err)
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := []string{"-q"}
	if r.Node != "" {
		full = append(full, "-n", r.Node)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, path, full...)
	cmd.WaitDelay = time.Second // its children may hold the pipe open
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.Join(strings.Fields(stderr.String()), " ") // one line
		if len(msg) > maxErrLen {
			msg = msg[:maxErrLen] + "..."
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (after %s)", ctx.Err(), timeout)
		}
		return nil, fmt.Errorf("rabbitmqctl %s: %w: %s", args[0], err, msg)
	}
	return out, nil
}

// JSON runs rabbitmqctl args... --formatter json and decodes its output
// into v.
func (r Runner) JSON(ctx context.Context, v any, args ...string) error {
	out, err := r.Run(ctx, append(args, "--formatter", "json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), v); err != nil {
		return fmt.Errorf("rabbitmqctl %s: unexpected output: %w", args[0], err)
	}
	return nil
}

// LocalVhost returns the vhost of a broker URL that points at the local
// node's default listener (localhost, 127.0.0.1 or ::1, port 5672): the
// node a bare rabbitmqctl talks to.
func LocalVhost(rawURL string) (string, bool) {
	u, err := amqp.ParseURI(rawURL)
	if err != nil {
		return "", false
	}
	switch u.Host {
	case "localhost", "127.0.0.1", "::1":
	default:
		return "", false
	}
	if u.Port != 5672 {
		return "", false
	}
	return u.Vhost, true
}
