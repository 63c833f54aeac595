// Package shard reads samples from WebDataset-style tar shards.
//
// A shard is a POSIX tar archive in which consecutive members sharing a key
// form one sample: img1.label.png and img1.probs.npy are the fields
// "label.png" and "probs.npy" of sample "img1". The key is the member path
// up to the first dot of its base name, so a/b/img1.label.png has key
// a/b/img1; the field is the rest of the name, lower-cased.
//
// A [Reader] streams a shard, holding one sample in memory at a time, and
// reports malformed shards (a key that reappears after other keys, a field
// given twice, a member over the size limit, a truncated or corrupt archive)
// as [*Error] values naming the shard and member.
//
// To read samples out of order, [Index] lists the samples of a shard with
// their byte spans from the tar headers alone, seeking over member data, and
// a [SampleReader] reads one sample from its span; a defect of one sample is
// then reported on its [Entry] rather than failing the whole shard. A span
// already in memory, such as a local shard's mapped into it, is read
// without copying its members ([SampleReader.ReadMapped]).
package shard
