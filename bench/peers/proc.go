package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sensehq/sense/bench"
)

// serverProc is a server this program started as a child process. It
// is stopped by its PID, and its CPU time is read from /proc by that PID,
// so that the server's cost per event can be set beside its rate.
//
// Each child runs in a process group of its own (led by it), so that a
// Ctrl-C typed at the terminal reaches only this program, which then
// stops its servers in order; when a server does not exit in time, stop
// kills its whole group. (The Erlang VM's erl_child_setup starts a
// session of its own and exits when the VM does.)
type serverProc struct {
	name   string // as printed: "redis-server"
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
	out    *tailBuffer   // the last of its stdout and stderr
}

// startProc starts path with args and env (nil: this process's
// environment) as a server named name. Its output goes to a tailBuffer,
// and also to stdout when that is not nil.
func startProc(name, path string, args, env []string, stdout io.Writer) (*serverProc, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	out := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if stdout != nil {
		cmd.Stdout = io.MultiWriter(out, stdout)
	}
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, path, err)
	}
	p := &serverProc{name: name, cmd: cmd, exited: make(chan struct{}), out: out}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Pid is the server's process ID.
func (p *serverProc) Pid() int { return p.cmd.Process.Pid }

// CPU returns the CPU time the server has used so far.
func (p *serverProc) CPU() (bench.CPUTime, error) {
	select {
	case <-p.exited:
		return bench.CPUTime{}, fmt.Errorf("%s (pid %d) has exited (%v)", p.name, p.Pid(), p.cmd.ProcessState)
	default:
	}
	return bench.ProcessCPU(p.Pid())
}

// exitedError says that the server exited before it was ready, with the
// end of its output.
func (p *serverProc) exitedError() error {
	return fmt.Errorf("%s exited at start (%v): %s", p.name, p.cmd.ProcessState, strings.TrimSpace(p.out.String()))
}

// stop sends the server SIGTERM and waits for it to exit; after grace it
// kills its process group with SIGKILL. It returns once the server and
// the helper processes it had started have exited: helpers still running
// 5 seconds after it are killed, by their PIDs.
func (p *serverProc) stop(grace time.Duration) error {
	helpers := helpersOf(p.Pid())
	var errs []error
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("stopping %s (pid %d): %w", p.name, p.Pid(), err))
	}
	select {
	case <-p.exited:
	case <-time.After(grace):
		if err := killGroup(p.cmd.Process); err != nil {
			errs = append(errs, fmt.Errorf("killing %s (pid %d) after %v: %w", p.name, p.Pid(), grace, err))
		}
		<-p.exited
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, h := range helpers {
		for h.running() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if h.running() {
			h.kill()
			for i := 0; h.running() && i < 100; i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	return errors.Join(errs...)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free loopback port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
