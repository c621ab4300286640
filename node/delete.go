package node

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

var (
	// ErrUnknownPipeline is returned by DeletePipeline for a name the
	// catalog does not hold.
	ErrUnknownPipeline = errors.New("node: unknown pipeline")
	// ErrPipelineDeclared is returned by DeletePipeline for a pipeline the
	// config file (the one the node was opened with) declares: the next
	// start would create it again. Remove it from the config file and
	// restart first; then it can be deleted.
	ErrPipelineDeclared = errors.New("node: pipeline is declared in the config file")
)

// DeletePipeline removes a pipeline, and every event in its buffers, unless
// the config file declares it (ErrPipelineDeclared). In order, under the
// node's lock:
//
//  1. the catalog is saved without it (from then on the deletion stands,
//     across a crash too);
//  2. a routing table and state without it are swapped in, so new produce,
//     fetch and Log calls no longer find it;
//  3. its logs are closed: a call that found one before step 2 and is
//     still in it fails with seglog.ErrClosed, which the node reports as
//     result.UnknownPipeline (see closedCode), and a waiting reader wakes;
//  4. its buffer directories, <data_dir>/hubs/<hub>/<name>-<partition>,
//     are removed and each hub directory is synced.
//
// A crash between 1 and 4 leaves directories no pipeline owns; Open finds
// them (findLeftovers) and creating a pipeline of the same name removes
// them first (dropBuffersLocked), so a new pipeline always starts empty.
func (n *Node) DeletePipeline(name string) error {
	if err := n.fixed(name); err != nil {
		return err
	}
	if n.opts.Proposer != nil {
		n.mu.Lock()
		err := n.deletableLocked(name)
		n.mu.Unlock()
		if err != nil {
			return err
		}
		return n.opts.Proposer.DeletePipeline(name)
	}
	return n.ApplyDeletePipeline(name)
}

// deletableLocked says why pipeline name cannot be deleted, if it cannot.
func (n *Node) deletableLocked(name string) error {
	if n.closed.Load() {
		return ErrClosed
	}
	if n.cat.find(name) == nil {
		return fmt.Errorf("%w: %q", ErrUnknownPipeline, name)
	}
	// The catalog's Declared flag says the pipeline was declared once; the
	// options say whether the running config still declares it.
	if slices.ContainsFunc(n.opts.Pipelines, func(p PipelineSpec) bool { return p.Name == name }) {
		return fmt.Errorf("%w: %q; remove it from the config file's pipelines and restart, then delete it", ErrPipelineDeclared, name)
	}
	return nil
}

// ApplyDeletePipeline deletes pipeline name on this node: DeletePipeline's
// work, which a cluster node does when its metadata log says so.
func (n *Node) ApplyDeletePipeline(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.deletableLocked(name); err != nil {
		return err
	}
	spec := *n.cat.find(name)
	if err := n.cat.remove(name); err != nil {
		return err
	}
	n.dropLocked(name)
	if err := n.removeBuffersLocked(spec); err != nil {
		n.leftovers[name] = true
		return fmt.Errorf("node: pipeline %q is deleted; removing its buffers: %w", name, err)
	}
	// Groups' commits on the old pipeline would point a consumer of a new
	// one of the same name past its end.
	if f := n.opts.PipelineDeleted; f != nil {
		if err := f(name); err != nil {
			return fmt.Errorf("node: pipeline %q is deleted, but forgetting what refers to it failed: %w", name, err)
		}
	}
	n.log.Info("deleted pipeline", "pipeline", name)
	return nil
}

// removeBuffersLocked closes the buffers of spec's partitions, forgets
// them, removes their directories and syncs each hub directory it
// touched: the cost of a deletion does not grow with the number of
// pipelines. Called with n.mu held, once no state serves the pipeline.
func (n *Node) removeBuffersLocked(spec PipelineSpec) error {
	var errs []error
	synced := map[string]bool{}
	for i, sl := range spec.Layout() {
		dir := n.bufferDir(spec.Name, sl.Hub, int32(i))
		if l := n.bufs[dir]; l != nil {
			if err := l.Close(); err != nil && !errors.Is(err, seglog.ErrClosed) {
				// Its events are being deleted: nothing is lost.
				n.log.Warn("closing a deleted buffer failed", "dir", dir, "err", err)
			}
			delete(n.bufs, dir)
		}
		if err := vfs.RemoveAll(n.opts.FS, dir); err != nil {
			errs = append(errs, err)
			continue
		}
		synced[filepath.Dir(dir)] = false
	}
	for hubDir := range synced {
		if err := n.opts.FS.SyncDir(hubDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// findLeftovers records the pipelines that have buffer directories on
// disk but are not in the catalog: a deletion, or a creation that was
// never acknowledged, cut by a crash. Creating a pipeline of such a name
// removes them first. Called by Open, the one time every hub directory is
// listed.
func (n *Node) findLeftovers() error {
	hubsDir := filepath.Join(n.opts.DataDir, "hubs")
	hubs, err := n.opts.FS.List(hubsDir)
	if vfs.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: list %s: %w", hubsDir, err)
	}
	for _, h := range hubs {
		entries, err := n.opts.FS.List(filepath.Join(hubsDir, h))
		if err != nil {
			continue // not a directory
		}
		for _, e := range entries {
			name, ok := bufferPipeline(e)
			if ok && n.cat.find(name) == nil {
				n.leftovers[name] = true
			}
		}
	}
	return nil
}

// bufferPipeline returns the pipeline a hub's sub-directory named base
// belongs to: base is the name, '-', a partition number.
func bufferPipeline(base string) (string, bool) {
	i := strings.LastIndexByte(base, '-')
	if i <= 0 || !isBufferDir(base, base[:i]) {
		return "", false
	}
	return base[:i], true
}

// dropBuffersLocked closes the open logs of pipeline name's buffers, forgets
// them, and removes their directories in every hub, listing each hub
// directory (pipelines whose directories removeBuffersLocked cannot know:
// see findLeftovers). Called with n.mu held, once no state serves the
// pipeline.
func (n *Node) dropBuffersLocked(name string) error {
	for dir, l := range n.bufs {
		if !isBufferDir(filepath.Base(dir), name) {
			continue
		}
		if err := l.Close(); err != nil && !errors.Is(err, seglog.ErrClosed) {
			// Its events are being deleted: nothing is lost.
			n.log.Warn("closing a deleted buffer failed", "dir", dir, "err", err)
		}
		delete(n.bufs, dir)
	}
	fs := n.opts.FS
	hubsDir := filepath.Join(n.opts.DataDir, "hubs")
	hubs, err := fs.List(hubsDir)
	if vfs.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hubs {
		hubDir := filepath.Join(hubsDir, h)
		entries, err := fs.List(hubDir)
		if err != nil {
			continue // not a directory
		}
		removed := false
		for _, e := range entries {
			if !isBufferDir(e, name) {
				continue
			}
			if err := vfs.RemoveAll(fs, filepath.Join(hubDir, e)); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = true
		}
		if removed {
			if err := fs.SyncDir(hubDir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		n.leftovers[name] = true
		return err
	}
	delete(n.leftovers, name)
	return nil
}

// isBufferDir reports whether a hub's sub-directory named base is a buffer
// of pipeline name: name, '-', a partition number. Pipeline names have no
// '/', and the suffix is all digits, so no other pipeline's buffer matches
// ("a-1-0" is pipeline "a-1"'s, not "a"'s).
func isBufferDir(base, name string) bool {
	rest, ok := strings.CutPrefix(base, name+"-")
	if !ok || rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return false
		}
	}
	return true
}

// closedCode is the code for an operation whose log closed under it: the
// node is closing, or (otherwise the only way a log closes) its pipeline
// was deleted.
func (n *Node) closedCode() result.Code {
	if n.closed.Load() {
		return result.NotReady
	}
	return result.UnknownPipeline
}
