package schema

// SetValidatorForTest installs the strict proxy's validator for FuzzEncoder.
func SetValidatorForTest(f func([]byte) error) { validateEntity = f }
