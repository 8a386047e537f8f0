package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/broker"
)

// ErrQueueNotFound is returned (wrapped) by Pause and Resume for a queue
// that does not exist. It matches broker.ErrQueueNotFound too.
var ErrQueueNotFound = fmt.Errorf("fleet: %w", broker.ErrQueueNotFound)

// Marker returns the name of queue's pause marker: PausePrefix+queue.
func Marker(queue string) string { return PausePrefix + queue }

// Pause pauses queue: workers stop taking its tasks within a second (within
// their worker.Config.PauseCheckInterval), and let the tasks they run
// finish. Tasks can still be enqueued; they wait in the queue. It declares
// the queue's marker, a durable quorum queue that stays empty, so the pause
// outlives workers, dashboards and broker restarts. Pausing a paused queue
// is no error. A queue that does not exist is ErrQueueNotFound; the marker
// needs the configure permission on warren.paused.<queue>.
func Pause(ctx context.Context, conn *broker.Conn, queue string) error {
	if err := exists(ctx, conn, queue); err != nil {
		return err
	}
	if err := broker.DeclarePlain(ctx, conn, Marker(queue), broker.DeclareOptions{}); err != nil {
		return fmt.Errorf("fleet: pause %s: %w", queue, err)
	}
	return nil
}

// Resume resumes a paused queue: it deletes the queue's marker, and workers
// consume it again within their worker.Config.PauseCheckInterval. Resuming
// a queue that is not paused is no error. The marker is deleted even when
// the queue itself no longer exists, which is then ErrQueueNotFound.
func Resume(ctx context.Context, conn *broker.Conn, queue string) error {
	if err := warren.ValidateQueueName(queue); err != nil {
		return err
	}
	if _, err := broker.DeleteQueue(ctx, conn, Marker(queue), broker.DeleteOptions{}); err != nil {
		return fmt.Errorf("fleet: resume %s: %w", queue, err)
	}
	return exists(ctx, conn, queue)
}

// Paused reports whether queue is paused: whether its marker exists. It
// does not check that the queue itself exists. A passive declare asks the
// broker, which needs no permission.
func Paused(ctx context.Context, conn *broker.Conn, queue string) (bool, error) {
	if err := warren.ValidateQueueName(queue); err != nil {
		return false, err
	}
	_, err := broker.Inspect(ctx, conn, Marker(queue))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, broker.ErrQueueNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("fleet: is %s paused: %w", queue, err)
	}
}

// exists checks queue's name and that it exists.
func exists(ctx context.Context, conn *broker.Conn, queue string) error {
	if err := warren.ValidateQueueName(queue); err != nil {
		return err
	}
	_, err := broker.Inspect(ctx, conn, queue)
	if errors.Is(err, broker.ErrQueueNotFound) {
		return fmt.Errorf("%w: %s", ErrQueueNotFound, queue)
	}
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	return nil
}
