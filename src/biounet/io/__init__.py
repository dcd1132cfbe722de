"""Files in and out: images (:mod:`.images`), models (:mod:`.checkpoint`), atomic writes (:mod:`.atomic`)."""
