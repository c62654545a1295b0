"""Tools above the run layer: `bench` (speed), the GPU check, the `methods` listing."""
