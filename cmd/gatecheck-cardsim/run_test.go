package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatecheck/gatecheck/devices/ga467"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The command plays a script file behind a link and stops when the queue is done.
func TestCardsimCommand(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "q.json")
	os.WriteFile(script, []byte(`{"steps":[{"card":{"name":"张三","birth":"19491231","number":"11010519491231002X"},"hold":1}]}`), 0o644)
	link := filepath.Join(dir, "reader")
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--script", script, "--link", link}, &out, &out) }()
	var r *ga467.Reader
	var err error
	for i := 0; i < 100; i++ { // bounded wait for the link
		if r, err = ga467.Open(ga467.Config{Path: link}); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var card *ga467.Card
	for i := 0; i < 10 && card == nil; i++ {
		if card, err = r.Poll(); err != nil {
			t.Fatal(err)
		}
	}
	if card == nil || card.Number != "11010519491231002X" {
		t.Fatalf("card %v", card)
	}
	for i := 0; i < 5; i++ {
		r.Poll() // the hold polls end the queue
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "reader port: "+link) || !strings.Contains(s, "queue finished") || !strings.Contains(s, "served 110105********002X") {
		t.Fatalf("output:\n%s", s)
	}
	if _, err := os.Lstat(link); err == nil {
		t.Error("the link outlived the simulator")
	}
}

func TestCardsimUsage(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), nil, &out, &out); err == nil {
		t.Fatal("no --script accepted")
	}
	if err := run(context.Background(), []string{"--script", "/nonexistent.json"}, &out, &out); err == nil {
		t.Fatal("missing script accepted")
	}
}
