// Colab webcam snapshot: shows the camera and a Capture button, returns the photo as a JPEG data URL.
async function takePhoto(quality) {
  const video = document.createElement('video');
  const button = document.createElement('button');
  button.textContent = 'Capture';
  document.body.append(video, button);
  const stream = await navigator.mediaDevices.getUserMedia({video: true});
  video.srcObject = stream;
  await video.play();
  google.colab.output.setIframeHeight(document.documentElement.scrollHeight, true);
  await new Promise((resolve) => button.onclick = resolve);
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext('2d').drawImage(video, 0, 0);
  stream.getVideoTracks()[0].stop();
  video.remove(); button.remove();
  return canvas.toDataURL('image/jpeg', quality);
}
