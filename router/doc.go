// Package router holds Sense's routing table: an immutable, versioned
// snapshot that maps an event's (pipeline, jurisdiction mask, priority, key)
// to the one buffer it is appended to, without allocating.
//
// # Model
//
// A Hub is a site in one jurisdiction (its Mask has one bit, or every bit
// for a hub of jurisdiction "*"), with a HubStatus (up, draining, down) and
// a policy: the pipelines it may not hold (Hub.Deny).
//
// A Pipeline is a named stream, served as a Kafka topic, of any number of
// buffers (partitions), each in one hub and one priority lane (event.Low,
// event.Medium, event.Critical). Where each partition lives is its layout:
//
//   - the standard layout: every hub holds Pipeline.Partitions buffers in
//     each of the three lanes, numbered hub by hub in config order, then
//     lane by lane in priority order, then by index:
//
//     partition = (hubIndex*3 + lane)*Partitions + index
//
//     Appending a hub to the end of the config keeps every existing
//     partition number.
//
//   - an explicit layout (Pipeline.Layout): partition i lives in the hub
//     and lane of Layout[i], any count from 1 to MaxBuffers. A Kafka-created
//     topic has its N partitions in its default lane, spread over the hubs;
//     partitions added later are appended, so numbers never change.
//
// A buffer's Index is its number among the buffers of its hub and lane, in
// partition order. Partition numbers do not change when a hub goes down or
// changes its policy.
//
// Events of a priority whose lane the pipeline has no buffer in are stored
// in the lane of the pipeline's default priority (or, lacking that, its
// lowest lane): a pipeline laid out in one lane holds every priority in it,
// without the isolation between classes that separate lanes give. Routes.
// LaneFor says which lane a priority goes to.
//
// A buffer of hub H is eligible for an event when H.Mask shares a bit with
// the event's mask, H is up (draining and down hubs take no new events), H's
// policy does not deny the pipeline, and the buffer's lane is the lane of
// the event's priority (LaneFor). Routes.Route picks one eligible buffer, or reports a Reason why
// there is none; Table.Explain says, buffer by buffer, why each one is or is
// not eligible.
//
// # Choosing among eligible buffers
//
// With a key (a non-nil slice, as in Kafka a nil key means "no key" while an
// empty one is a key), Route uses rendezvous (highest-random-weight)
// hashing: the key is hashed with XXH64 (seed 0, see HashKey), and every
// eligible buffer gets the weight mix(h XOR seed), where mix is the
// bijective MurmurHash3 fmix64 finalizer and seed is XXH64 of the text
// "<hub name>#<index>" (see BufferSeed). The buffer with the highest weight
// wins. The seeds do not depend on the pipeline, the lane, the hub's
// position in the config or the process, so:
//
//   - a key lands on the same buffer (hub and index) across restarts, nodes,
//     and releases, and across pipelines with the same hubs and partition
//     count (co-partitioning, as Kafka gives to topics of equal size);
//   - while the eligible set is stable a key stays on one buffer, so its
//     events stay in order;
//   - when a buffer leaves the set (its hub goes down, starts draining or
//     denies the pipeline) only the keys that were on it move, spread over
//     the remaining buffers; when it comes back, only those keys return.
//     Raising Partitions moves only the keys that the new buffers win.
//
// Without a key, Route takes the (spread mod n)-th of the n eligible buffers
// in hub order, then index order (partition order in the standard layout),
// where spread is chosen by the caller: a counter gives
// exact round robin, a hash of (producer id, sequence) a stable choice per
// batch.
//
// # Hot path
//
// Build does all the work: it validates the config and, per pipeline,
// keeps the hubs that are up, allow the pipeline and hold buffers of it,
// each as a candidate group (its mask, and per lane its partitions and
// their seeds), plus four masks (the union of all hubs', of up hubs', of
// up-and-allowing hubs' and of the candidates') from which a refusal's
// Reason follows in O(1).
// Route then scans the candidate groups once: a mask test per hub and, for
// a key, one multiply-xorshift mix per buffer of a matching hub. It touches
// no map, takes no lock and allocates nothing. Table.Pipeline is one map
// lookup by name, also without allocation.
//
// A Table is never changed after Build; the server rebuilds one from
// cluster metadata on any change and publishes it through a Holder, an
// atomic pointer, so routers always read a consistent snapshot.
package router
