package backend

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"
)

// getJSON reads key into v; found is false when there is no entry.
func getJSON(ctx context.Context, s logical.Storage, key string, v any) (found bool, err error) {
	e, err := s.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", key, err)
	}
	if e == nil {
		return false, nil
	}
	if err := json.Unmarshal(e.Value, v); err != nil {
		return false, fmt.Errorf("decoding %s: %w", key, err)
	}
	return true, nil
}

// getEntry reads the entry at key; nil when there is none.
func getEntry[T any](ctx context.Context, s logical.Storage, key string) (*T, error) {
	var v T
	found, err := getJSON(ctx, s, key, &v)
	if err != nil || !found {
		return nil, err
	}
	return &v, nil
}

func putJSON(ctx context.Context, s logical.Storage, key string, v any) error {
	e, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	if err := s.Put(ctx, e); err != nil {
		return fmt.Errorf("writing %s: %w", key, err)
	}
	return nil
}
