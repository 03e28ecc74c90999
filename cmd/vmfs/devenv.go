package main

import (
	"os"
	"strconv"
)

// devEnv holds the environment variables for performance work and tests,
// all read here: none changes what vmfs does for a user.
type devEnv struct {
	CPUProfile string // VMFS_CPUPROFILE: CPU profile of the whole run
	MemProfile string // VMFS_MEMPROFILE: heap profile at unmount
	// VMFS_MEMPROFILE_PEAK: heap profile of the largest live heap of the
	// run (written again after every collection that finds more live).
	PeakProfile string
	FUSEDebug   bool   // VMFS_FUSE_DEBUG (with -v): log every FUSE request
	MaxWatches  int    // VMFS_TEST_MAX_WATCHES: run out of inotify watches early
	Crash       string // VMFS_TEST_CRASH: end the process at this engine crash point
}

var dev = readDevEnv()

func readDevEnv() devEnv {
	d := devEnv{
		CPUProfile:  os.Getenv("VMFS_CPUPROFILE"),
		MemProfile:  os.Getenv("VMFS_MEMPROFILE"),
		PeakProfile: os.Getenv("VMFS_MEMPROFILE_PEAK"),
		FUSEDebug:   os.Getenv("VMFS_FUSE_DEBUG") != "",
		Crash:       os.Getenv("VMFS_TEST_CRASH"),
	}
	d.MaxWatches, _ = strconv.Atoi(os.Getenv("VMFS_TEST_MAX_WATCHES"))
	return d
}
