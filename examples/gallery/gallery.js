// Renders a fedi-token snapshot (Mastodon-API statuses or Misskey notes) as a grid of the posts'
// media, from the copies the snapshot action mirrored (each attachment's `local` paths, relative
// to the JSON file). Server data only ever goes in as text or attributes, never as HTML.
(async () => {
  const main = document.getElementById('gallery');
  const src = new URL(
    new URLSearchParams(location.search).get('src') || main.dataset.src,
    location.href,
  );
  const posts = await (await fetch(src)).json();
  const el = (tag, attributes = {}) => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes))
      if (value != null) node.setAttribute(name, value);
    return node;
  };
  const local = (path) => path && new URL(path, src).href;
  const plain = (html) => new DOMParser().parseFromString(html || '', 'text/html').body.textContent;

  for (const item of posts) {
    // A boost (or a renote without files of its own) shows what was boosted.
    const own = item.media_attachments || item.files || [];
    const post = own.length ? item : item.reblog || item.renote || item;
    const files = post.media_attachments || post.files || [];
    const misskey = 'files' in post;
    const media = el('div', { class: 'media' });
    for (const file of files) {
      const paths = file.local || {};
      const kind = misskey ? file.type.split('/')[0] : file.type;
      const alt = (misskey ? file.comment : file.description) || '';
      if (!paths.original && !paths.preview) continue; // not mirrored (yet)
      if (kind === 'image' || !paths.original) {
        const link = el('a', { href: local(paths.original || paths.preview) });
        link.append(
          el('img', { src: local(paths.preview || paths.original), alt, loading: 'lazy' }),
        );
        media.append(link);
      } else if (kind === 'video' || kind === 'gifv') {
        const loop = kind === 'gifv' ? '' : null;
        const video = el('video', {
          src: local(paths.original),
          poster: local(paths.preview),
          'aria-label': alt,
          title: alt,
          controls: '',
          preload: 'none',
          loop,
          muted: loop,
          playsinline: '',
        });
        media.append(video);
      } else if (kind === 'audio') {
        media.append(
          el('audio', {
            src: local(paths.original),
            'aria-label': alt,
            title: alt,
            controls: '',
            preload: 'none',
          }),
        );
      }
    }
    if (!media.childElementCount) continue;
    const figure = el('figure', { class: 'post', 'data-id': item.id });
    const warning =
      post.spoiler_text ||
      post.cw ||
      (post.sensitive || files.some((f) => f.isSensitive) ? 'Sensitive media' : '');
    if (warning) {
      const details = el('details', { class: 'cw' });
      const summary = el('summary');
      summary.textContent = warning;
      details.append(summary, media);
      figure.append(details);
    } else figure.append(media);
    const caption = el('figcaption');
    const text = misskey ? post.text : plain(post.content);
    caption.textContent =
      `${new Date(post.created_at || post.createdAt).toLocaleDateString()} ${warning ? '' : text || ''}`.trim();
    figure.append(caption);
    main.append(figure);
  }
  main.removeAttribute('aria-busy');
})().catch((error) => {
  document.getElementById('gallery').textContent = `Could not show the snapshot: ${error.message}`;
});
