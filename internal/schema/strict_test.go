package schema_test

import (
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// The codec fuzz target checks every entity against the strict proxy's rules.
func init() { schema.SetValidatorForTest(azurite.ValidateEntity) }
