"""sdr_isac: integrated sensing and communication on software-defined radios.

Layers (imports go down): errors, units, config, capture -> waveform,
recording -> channel -> radio, sensing -> fusion -> experiments, stream ->
display -> cli.  See ``DESIGN.md`` in the project's shared folder.
"""

from sdr_isac import config, errors, units
from sdr_isac.capture import Capture

__version__ = "0.1.0"

__all__ = ["Capture", "config", "errors", "units", "__version__"]
