package meta

// pipeline.alter changes the run-time settings of a pipeline created at
// run time (retention, default jurisdiction and priority): Pipeline names
// it, Spec holds the settings that change, as the node encodes them
// (opaque here, like pipeline.create's spec). Every node applies the
// changes in log order, so two changes of different settings made at
// once on two nodes both stand, and of one setting the later one wins.
//
// The metadata keeps no settings of its own: a node's catalog holds them,
// and a node that replays the log from its start (a new or wiped node)
// applies every change again after the pipeline's creation, reaching the
// same settings.

// checkAlter is Check for pipeline.alter: the pipeline must have been
// created at run time and not deleted. A pipeline of the config file is
// not in the metadata; its settings are the file's on every node.
func (c *Command) checkAlter(s *State) error {
	if c.Pipeline == "" || len(c.Spec) == 0 {
		return invalid("pipeline.alter without a pipeline name or the settings that change")
	}
	if !s.HasPipeline(c.Pipeline) {
		return invalid("pipeline %q was not created at run time, or is deleted: only such pipelines are altered through the cluster metadata (change a pipeline of the config file in the file, on every node)", c.Pipeline)
	}
	return nil
}

// applyAlter is Apply for pipeline.alter, once checked: the state holds no
// settings, so it only reports the change, for the nodes to apply it.
func (s *State) applyAlter(*Command) bool { return true }
