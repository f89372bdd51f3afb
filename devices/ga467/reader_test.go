package ga467

import (
	"errors"
	"testing"
	"time"
)

// noisyPort answers every read with line noise and never a frame.
type noisyPort struct{}

func (noisyPort) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 0x55
	}
	time.Sleep(time.Millisecond)
	return len(b), nil
}
func (noisyPort) Write(b []byte) (int, error) { return len(b), nil }
func (noisyPort) Close() error                { return nil }

// A line full of noise gives ErrTimeout within the command's time limit, never a hang.
func TestNoiseTimesOut(t *testing.T) {
	r, err := Open(Config{Path: "noisy", CommandTimeout: 200 * time.Millisecond,
		Open: func(string, int, time.Duration) (Port, error) { return noisyPort{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan error, 1)
	go func() { _, err := r.FindCard(); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a noisy line kept the command waiting")
	}
}
