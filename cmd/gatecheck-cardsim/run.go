package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/gatecheck/gatecheck/cmd/internal/cli"
	"github.com/gatecheck/gatecheck/devices/cardsim"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("gatecheck-cardsim", stderr)
	script := fs.String("script", "", "the queue of cards to present (JSON; see devices/cardsim/script.go) (required)")
	link := fs.String("link", "", "keep a symlink here pointing at the current pseudo-terminal (survives simulated replugs)")
	baud := fs.Int("baud", 0, "pace bytes at this baud rate (default: the script's, else 115200)")
	stay := fs.Bool("stay", false, "keep answering \"no card\" after the queue until interrupted")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if err := cli.NoArgs("gatecheck-cardsim", pos); err != nil {
		return err
	}
	if *script == "" {
		return cli.Usagef("--script is required")
	}
	s, err := cardsim.LoadScript(*script)
	if err != nil {
		return err
	}
	if *baud != 0 {
		s.Baud = *baud
		if err := s.Validate(); err != nil {
			return cli.Usagef("--baud: %v", err)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sim, err := cardsim.Start(ctx, cardsim.Config{Script: s, Link: *link, Logger: log})
	if err != nil {
		return err
	}
	defer sim.Close()
	fmt.Fprintf(stdout, "reader port: %s\n", sim.Path())
	if *link != "" {
		fmt.Fprintln(stdout, "(a symlink to the current pseudo-terminal; it moves when a step unplugs the reader)")
	}
	fmt.Fprintf(stdout, "playing %d steps; point the device's reader.port at the path above\n", len(s.Steps))
	finished := sim.Finished()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-sim.Events():
			fmt.Fprintf(stdout, "step %d: %s %s\n", e.Step, e.Kind, e.Info)
		case <-finished:
			if *stay {
				finished = nil // keep answering until interrupted
				fmt.Fprintln(stdout, "queue finished; answering \"no card\" until interrupted")
			} else {
				// Report what is left in the event buffer, then stop.
				for {
					select {
					case e := <-sim.Events():
						fmt.Fprintf(stdout, "step %d: %s %s\n", e.Step, e.Kind, e.Info)
					default:
						fmt.Fprintln(stdout, "queue finished")
						return nil
					}
				}
			}
		}
	}
}
