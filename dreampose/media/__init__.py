"""Pictures and videos in and out, below both pose extraction and the model.

- ``images``: the one photo loader (EXIF orientation, transparency, 16 bit, size limits).
- ``video_reader`` / ``video_writer``: driving videos as RGB frames; H.264 mp4s with sound.
- ``canvas``: fitting a photo or pose maps onto the output canvas without distortion.
- ``npy``: reading ``.npy`` arrays whose headers are checked before anything is unpacked.
"""
