package node

import (
	"strings"

	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// A jurisdiction view of a pipeline is the pipeline as a Kafka client that
// knows nothing of hubs can use it compliantly: the topic "<pipeline>.<J>",
// where J is a registered jurisdiction code or group, has as its partitions
// 0, 1, ... the pipeline's partitions in hubs of J (and in hubs of any
// jurisdiction, "*"), in the pipeline's partition order, and its records
// take the mask J when they name none. Reads and offsets are the
// underlying partitions'. A pipeline of the view's full name, if there is
// one, is the pipeline, not a view. docs/kafka.md describes it.
type view struct {
	p     *pipeline
	mask  jurisdiction.Mask
	parts []int32 // view partition -> pipeline partition
}

// view resolves name as a jurisdiction view, caching it in the state.
func (s *state) view(name string, reg *jurisdiction.Registry) *view {
	if v, ok := s.views.Load(name); ok {
		return v.(*view)
	}
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return nil
	}
	p := s.pipeline(name[:i])
	if p == nil {
		return nil
	}
	mask, err := reg.Parse(name[i+1:])
	if err != nil {
		return nil
	}
	v := &view{p: p, mask: mask}
	for part, b := range p.routes.Partitions() {
		if s.table.Hub(b.HubIndex).Mask&mask != 0 {
			v.parts = append(v.parts, int32(part))
		}
	}
	s.views.Store(name, v)
	return v
}

// resolve returns the pipeline and the pipeline partition that name and
// partition stand for (name a pipeline or a view), and the mask a record
// naming none takes there.
func (n *Node) resolve(s *state, name string, partition int32) (*pipeline, int32, jurisdiction.Mask, result.Code) {
	if p := s.pipeline(name); p != nil {
		if partition < 0 || int(partition) >= len(p.bufs) {
			return p, partition, p.mask, result.UnknownPartition
		}
		return p, partition, p.mask, result.OK
	}
	v := s.view(name, n.reg)
	if v == nil {
		return nil, partition, 0, result.UnknownPipeline
	}
	if partition < 0 || int(partition) >= len(v.parts) {
		return v.p, partition, v.mask, result.UnknownPartition
	}
	return v.p, v.parts[partition], v.mask, result.OK
}
