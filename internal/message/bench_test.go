package message_test

import (
	"io"
	"os"
	"testing"
	"time"

	"vmfs/internal/corpus"
	"vmfs/internal/message"
	"vmfs/internal/query"
)

// The extraction benchmarks run over the same 2,000 generated messages:
// compare ns/op of ReadWhole with Headers and BodyText for the ratio.
func benchCorpus(b *testing.B) []string {
	b.Helper()
	dir := b.TempDir()
	msgs, err := corpus.Generate(dir, corpus.Options{Messages: 2000, Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	paths := make([]string, len(msgs))
	for i, m := range msgs {
		paths[i] = m.Path
	}
	return paths
}

func BenchmarkExtract(b *testing.B) {
	paths := benchCorpus(b)
	headerNeeds := query.MustCompile(`OR FROM a (SUBJECT b HEADER List-Id c) SENTSINCE 1-Jan-2020`).Needs()
	b.Run("ReadWhole", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			f, err := os.Open(paths[i%len(paths)])
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, f)
			f.Close()
		}
	})
	b.Run("Headers", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := message.Load(paths[i%len(paths)], headerNeeds); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("BodyText", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			message.TextOf(paths[i%len(paths)], true, func(string) bool { return false })
		}
	})
}

func BenchmarkEvaluate(b *testing.B) {
	paths := benchCorpus(b)
	all := query.Needs{Headers: []string{"from", "subject", "list-id"}, Sent: true}
	msgs := make([]*query.Msg, len(paths))
	for i, p := range paths {
		m, err := message.Load(p, all)
		if err != nil {
			b.Fatal(err)
		}
		m.Flags = "S"
		msgs[i] = m
	}
	now := time.Now()
	for _, qs := range []string{"UNSEEN", "OR FROM müller SUBJECT café", `HEADER List-Id golang NOT SEEN YOUNGER 604800`} {
		q := query.MustCompile(qs)
		b.Run(qs, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				q.Match(msgs[i%len(msgs)], now)
			}
		})
	}
}
