package k8s

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// getCreater is the part of a typed client (Pods, Services, ...) that
// getOrCreate uses.
type getCreater[T metav1.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
}

// getOrCreate returns the object named like want, creating it from want
// when absent. It reads before it creates: a quota can refuse a create
// even of an object that exists. Losing a race to create (AlreadyExists)
// means reading again, so concurrent callers all end with the same one
// object.
func getOrCreate[T metav1.Object](
	ctx context.Context,
	c getCreater[T],
	kind string,
	want T,
) (got T, created bool, err error) {
	var zero T
	name := want.GetName()
	for range 3 {
		got, err := c.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return got, false, nil
		}
		if !apierrors.IsNotFound(err) {
			return zero, false, fmt.Errorf("reading %s %s: %w", kind, name, err)
		}

		got, err = c.Create(ctx, want, metav1.CreateOptions{})
		if err == nil {
			return got, true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return zero, false, fmt.Errorf("creating %s %s: %w", kind, name, err)
		}
	}
	return zero, false, fmt.Errorf("creating %s %s: it keeps being deleted and created", kind, name)
}

// getDeleter is the part of a typed client that deleteOwned uses.
type getDeleter[T metav1.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// deleteOwned deletes the object called name if it belongs to server id.
// An object that is absent, or goes while this runs, is fine.
func deleteOwned[T metav1.Object](
	ctx context.Context,
	c getDeleter[T],
	kind, name, id string,
) error {
	got, err := c.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", kind, name, err)
	}
	if err := owned(got, kind, id); err != nil {
		return err
	}
	if got.GetDeletionTimestamp() != nil {
		return nil
	}

	// the uid precondition keeps a pod that replaced this one since the
	// read from being deleted by mistake
	err = c.Delete(ctx, name, deleteExactly(got))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %s %s: %w", kind, name, err)
	}
	return nil
}

// owned returns an error wrapping ErrConflict unless obj is annotated as
// belonging to server id.
func owned(obj metav1.Object, kind, id string) error {
	got, ok := obj.GetAnnotations()[AnnotationServerID]
	if ok && got == id {
		return nil
	}
	return fmt.Errorf("%w: %s %s is annotated with server %q, not %q",
		ErrConflict, kind, obj.GetName(), got, id)
}

// deleteExactly are delete options that delete obj and not another object
// that has taken its name since it was read.
func deleteExactly(obj metav1.Object) metav1.DeleteOptions {
	uid := obj.GetUID()
	if uid == "" {
		return metav1.DeleteOptions{}
	}
	return metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}
}
