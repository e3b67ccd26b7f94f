"""Pictures and videos in and out, below both pose extraction and the model.

- ``images``: the one photo loader (EXIF orientation, transparency, 16 bit, size limits).
- ``video_reader`` / ``video_writer``: driving videos as RGB frames; H.264 mp4s with sound.
- ``canvas``: fitting a photo or pose maps onto the output canvas without distortion.
- ``frames``: the one way to save a picture and the one name of frame k (``frame_00012.png``).
- ``npy``: reading ``.npy`` arrays whose headers are checked before anything is unpacked.
"""
