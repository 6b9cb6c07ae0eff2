/**
 * The ids and tags of content's three-layer cache (@atoll/cache, namespace `content`): each entry is the
 * key `cacheEntry('content', <id>)`, each tag the key `cacheTag(<tag>)`. Every id and tag content uses is
 * built here, once, next to the keys they end up in.
 *
 * Entries, and the tags they depend on:
 *
 * | entry                       | id                                   | tagged                              |
 * |-----------------------------|--------------------------------------|-------------------------------------|
 * | an article by slug          | `article:<slug>`                     | `article:<id>`, `profile:<author>`  |
 * | a list item (no body)       | `summary:<id>`                       | `article:<id>`, `profile:<author>`  |
 * | a profile by name           | `profile:<name>`                     | `profile:<id>` or `list:name:<name>`|
 * | a page of a list            | `list:=<tag>:=<author>:=<fav>:<limit>:<offset>` | see below                |
 * | the popular tags            | `tags:popular`                       | `tags`                              |
 * | a page of comments          | `comments:<article id>:<limit>:<offset>` | `comments:<id>`, `article:<id>`, `profile:<each commenter>` |
 *
 * A page of comments holds what every reader sees alike (the viewer's `following` flags come from the
 * relation sets): a comment added or deleted invalidates `comments:<id>`, the article's deletion
 * `article:<id>`, a commenter's profile change `profile:<commenter>`. It is keyed by the article's id,
 * so a new slug leaves it valid (the slug's own entry, `article:<slug>`, is what a new slug invalidates).
 *
 * A cached list page holds only the ids of its articles and the total (the items come from the
 * summaries), so editing an article invalidates no list; a list is invalidated only by what changes
 * which articles it holds:
 *
 * | list                       | tagged                                   | invalidated by                      |
 * |----------------------------|------------------------------------------|-------------------------------------|
 * | all articles               | `list:all`                               | create, delete                      |
 * | `?tag=T`                   | `list:tag:T`                             | create, delete, a tag change (T)    |
 * | `?author=name`             | `list:by:<id>`, `profile:<id>`           | create, delete, that user's rename  |
 * | `?favorited=name`          | `list:favorited-by:<id>`, `profile:<id>` | their (un)favorite, a delete        |
 * | a name nobody has (yet)    | `list:name:<name>`                       | a user taking that name             |
 *
 * Feeds are personal (one per reader) and are not cached as pages; their items are. Names are compared
 * in lower case (an id folds A–Z only, a tag folds as JavaScript does: `nameId` and `name` below) and free
 * text is URI-encoded, so no id or tag holds a brace or a colon of its own.
 */

/** The filters of an article list, as the list routes take them. */
export interface ListQuery {
  tag?: string | undefined;
  author?: string | undefined;
  favorited?: string | undefined;
}

const encoded = (text: string) => encodeURIComponent(text);
/**
 * A name as an entry's id: A–Z folded, nothing else. PostgreSQL's `lower()`, which content's lookups and
 * unique indexes use, folds at least those (a database with the C locale, as `npm start` makes, folds
 * only those), so two names that share an id are always one account's; `Émile` and `émile` may be two.
 */
const foldAZ = <T extends string | undefined>(text: T): T =>
  text?.replace(/[A-Z]+/g, (c) => c.toLowerCase()) as T;
const nameId = (username: string) => encoded(foldAZ(username));
/**
 * A name as a tag: folded as JavaScript does, at least as much as any database: invalidating a tag that
 * also covers another spelling drops an entry too many, never one too few.
 */
const name = (username: string) => encoded(username.toLowerCase());
const filter = (value: string | undefined) => (value === undefined ? '' : `=${encoded(value)}`);

/** The ids of content's cache entries. */
export const cacheIds = {
  /** An article, by its slug. */
  article: (slug: string) => `article:${encoded(slug)}`,
  /** An article without its body, as list items show it, by its id. */
  summary: (articleId: string) => `summary:${articleId}`,
  /** A profile, by its username (any case). */
  profile: (username: string) => `profile:${nameId(username)}`,
  /** One page of one list. */
  list: (q: ListQuery, page: { limit: number; offset: number }) =>
    `list:${filter(q.tag)}:${filter(foldAZ(q.author))}:${filter(foldAZ(q.favorited))}:${page.limit}:${page.offset}`,
  /** The tags in use, most used first (GET /api/tags). */
  popularTags: 'tags:popular',
  /** One page of an article's comments, oldest first. */
  comments: (articleId: string, page: { limit: number; offset: number }) =>
    `comments:${articleId}:${page.limit}:${page.offset}`,
} as const;

/** The tags content's cache entries depend on. */
export const cacheTags = {
  /** Everything that shows an article (its id). */
  article: (articleId: string) => `article:${articleId}`,
  /** The pages of an article's comments (a comment added or deleted). */
  comments: (articleId: string) => `comments:${articleId}`,
  /** Everything that shows a user's profile or depends on their name (their id). */
  profile: (userId: string) => `profile:${userId}`,
  /** The list of all articles. */
  listAll: 'list:all',
  /** The lists filtered by one article tag. */
  listTag: (tag: string) => `list:tag:${encoded(tag)}`,
  /** The lists of one author's articles. */
  listBy: (userId: string) => `list:by:${userId}`,
  /** The lists of the articles one user favorited. */
  listFavoritedBy: (userId: string) => `list:favorited-by:${userId}`,
  /** What was cached as "nobody has that name" (a user taking it invalidates it). */
  listName: (username: string) => `list:name:${name(username)}`,
  /** The popular tags. */
  tags: 'tags',
} as const;
