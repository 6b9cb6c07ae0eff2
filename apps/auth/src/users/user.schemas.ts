/**
 * Request and response schemas of the RealWorld user routes (the public RealWorld contract,
 * api/openapi.yml of https://github.com/realworld-apps/realworld). Types only and lengths here; rules a
 * schema cannot say in RealWorld words (blank after trimming, email shape, password length) are checked
 * by the service with the contract's messages.
 */
import Type from 'typebox';

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

export const LIMITS = { username: 64, email: 254, password: 256, bio: 2000, image: 2048 } as const;

export const NewUserBody = Type.Object({
  user: Type.Object({
    username: Type.String({ minLength: 1, maxLength: LIMITS.username }),
    email: Type.String({ minLength: 1, maxLength: LIMITS.email }),
    password: Type.String({ minLength: 1, maxLength: LIMITS.password }),
  }),
});

export const LoginBody = Type.Object({
  user: Type.Object({
    email: Type.String({ minLength: 1, maxLength: LIMITS.email }),
    password: Type.String({ minLength: 1, maxLength: LIMITS.password }),
  }),
});

export const UpdateUserBody = Type.Object({
  user: Type.Object({
    username: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.username })),
    email: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.email })),
    /** `""` keeps the password (RealWorld frontends send the field empty when nothing was typed). */
    password: Type.Optional(Type.String({ maxLength: LIMITS.password })),
    /** Re-authentication for an email or password change (not a RealWorld field; optional). */
    currentPassword: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.password })),
    bio: Type.Optional(Nullable(Type.String({ maxLength: LIMITS.bio }))),
    image: Type.Optional(Nullable(Type.String({ maxLength: LIMITS.image }))),
  }),
});

export const UserResponse = Type.Object({
  user: Type.Object({
    email: Type.String(),
    token: Type.String(),
    username: Type.String(),
    bio: Nullable(Type.String()),
    image: Nullable(Type.String()),
  }),
});

export const SessionsResponse = Type.Object({
  sessions: Type.Array(
    Type.Object({
      id: Type.String(),
      createdAt: Type.String(),
      lastSeenAt: Type.String(),
      expiresAt: Type.String(),
      userAgent: Nullable(Type.String()),
      current: Type.Boolean(),
    }),
  ),
});
